//! The shapes the layout works with: boxes, the grid of occupied ones that collision tests
//! look up, points and quadratic curves.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(in crate::graph) struct Rect {
    pub(in crate::graph) x: f64,
    pub(in crate::graph) y: f64,
    pub(in crate::graph) w: f64,
    pub(in crate::graph) h: f64,
}

impl Rect {
    pub(super) fn centered(cx: f64, cy: f64, w: f64, h: f64) -> Rect {
        Rect {
            x: cx - w / 2.0,
            y: cy - h / 2.0,
            w,
            h,
        }
    }
    pub(in crate::graph) fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub(super) fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    pub(super) fn right(&self) -> f64 {
        self.x + self.w
    }
    pub(super) fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub(super) fn overlaps(&self, o: &Rect, margin: f64) -> bool {
        self.x - margin < o.right()
            && o.x - margin < self.right()
            && self.y - margin < o.bottom()
            && o.y - margin < self.bottom()
    }
    pub(in crate::graph) fn shift(&self, dx: f64, dy: f64) -> Rect {
        Rect {
            x: self.x + dx,
            y: self.y + dy,
            ..*self
        }
    }
    /// Where the ray from the centre towards `(tx, ty)` leaves the box.
    pub(super) fn border_towards(&self, tx: f64, ty: f64) -> (f64, f64) {
        let (cx, cy) = (self.cx(), self.cy());
        let (dx, dy) = (tx - cx, ty - cy);
        if dx.abs() < 1e-9 && dy.abs() < 1e-9 {
            return (cx, cy);
        }
        let sx = if dx.abs() > 1e-9 {
            self.w / 2.0 / dx.abs()
        } else {
            f64::INFINITY
        };
        let sy = if dy.abs() > 1e-9 {
            self.h / 2.0 / dy.abs()
        } else {
            f64::INFINITY
        };
        let s = sx.min(sy).min(1.0);
        (cx + dx * s, cy + dy * s)
    }
}

/// Occupied rectangles, bucketed on a grid so a collision test looks at a few neighbours only.
pub(super) struct Occupancy {
    cell: f64,
    buckets: HashMap<(i64, i64), Vec<usize>>,
    rects: Vec<Rect>,
}

impl Occupancy {
    pub(super) fn new() -> Self {
        Occupancy {
            cell: 128.0,
            buckets: HashMap::new(),
            rects: Vec::new(),
        }
    }
    fn cells(&self, r: &Rect) -> impl Iterator<Item = (i64, i64)> + use<> {
        let (x0, x1) = (
            (r.x / self.cell).floor() as i64,
            (r.right() / self.cell).floor() as i64,
        );
        let (y0, y1) = (
            (r.y / self.cell).floor() as i64,
            (r.bottom() / self.cell).floor() as i64,
        );
        (x0..=x1).flat_map(move |x| (y0..=y1).map(move |y| (x, y)))
    }
    pub(super) fn insert(&mut self, r: Rect) {
        let i = self.rects.len();
        self.rects.push(r);
        let grown = Rect {
            x: r.x - 4.0,
            y: r.y - 4.0,
            w: r.w + 8.0,
            h: r.h + 8.0,
        };
        for c in self.cells(&grown).collect::<Vec<_>>() {
            self.buckets.entry(c).or_default().push(i);
        }
    }
    pub(super) fn collides(&self, r: &Rect, margin: f64) -> bool {
        self.cells(r).any(|c| {
            self.buckets
                .get(&c)
                .is_some_and(|v| v.iter().any(|&i| self.rects[i].overlaps(r, margin)))
        })
    }
}

pub(super) type Pt = (f64, f64);

pub(super) fn bezier(p0: (f64, f64), c: (f64, f64), p2: (f64, f64), t: f64) -> (f64, f64) {
    let s = 1.0 - t;
    (
        s * s * p0.0 + 2.0 * s * t * c.0 + t * t * p2.0,
        s * s * p0.1 + 2.0 * s * t * c.1 + t * t * p2.1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_points_lie_on_the_box() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 100.0,
            h: 20.0,
        };
        assert_eq!(r.border_towards(50.0, 100.0), (50.0, 20.0));
        assert_eq!(r.border_towards(500.0, 10.0), (100.0, 10.0));
    }
}
