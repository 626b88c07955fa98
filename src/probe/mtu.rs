//! The path MTU over the tunnel to one peer: the largest don't-fragment echo that comes back,
//! found by a bounded binary search between a size known to pass and the interface's MTU.

/// The smallest echo sent (IP and ICMP headers and ping's 56-byte payload): the reachability
/// probe, which has already come back when the search starts.
fn floor(v6: bool) -> u16 {
    if v6 { 104 } else { 84 }
}

/// The IPv6 minimum MTU, the size tried after the interface's own: most black holes pass it.
const COMMON: u16 = 1280;

/// A search in progress: `good` came back, `bad` did not (or is past the interface's MTU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuSearch {
    good: u16,
    bad: u16,
    /// The interface's MTU, tried first.
    first: Option<u16>,
}

impl MtuSearch {
    pub fn new(interface_mtu: u16, v6: bool) -> Self {
        let good = floor(v6).min(interface_mtu);
        MtuSearch {
            good,
            bad: interface_mtu.saturating_add(1),
            first: Some(interface_mtu).filter(|m| *m > good),
        }
    }

    /// The next size to send, or `None` when the search is done.
    pub fn next(&self) -> Option<u16> {
        if let Some(first) = self.first {
            return Some(first);
        }
        if self.bad - self.good <= 1 {
            return None;
        }
        if self.good < COMMON && COMMON < self.bad {
            return Some(COMMON);
        }
        Some(self.good + (self.bad - self.good) / 2)
    }

    /// What came of sending `size` (a loss is resent by the caller before it counts here).
    pub fn record(&mut self, size: u16, came_back: bool) {
        self.first = None;
        if came_back {
            self.good = self.good.max(size);
        } else {
            self.bad = self.bad.min(size);
        }
    }

    /// The largest size known to pass.
    pub fn path_mtu(&self) -> u16 {
        self.good
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a path that passes packets up to `limit` bytes.
    fn search(interface_mtu: u16, limit: u16) -> (u16, usize) {
        let mut s = MtuSearch::new(interface_mtu, false);
        let mut sent = 0;
        while let Some(size) = s.next() {
            assert!(size <= interface_mtu && size > 0, "{size}");
            sent += 1;
            s.record(size, size <= limit);
        }
        (s.path_mtu(), sent)
    }

    #[test]
    fn a_clean_path_costs_one_probe() {
        assert_eq!(search(1420, 1500), (1420, 1));
    }

    #[test]
    fn a_black_hole_is_found_exactly_in_few_probes() {
        for limit in [84, 85, 600, 1279, 1280, 1281, 1328, 1340, 1419] {
            let (mtu, sent) = search(1420, limit);
            assert_eq!(mtu, limit, "limit {limit}");
            assert!(sent <= 13, "limit {limit}: {sent} probes");
        }
    }

    #[test]
    fn a_tiny_interface_mtu_needs_no_search() {
        assert_eq!(search(80, 1500), (80, 0));
    }
}
