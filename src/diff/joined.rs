//! Two maps of peers walked side by side, in key order: one pass over both instead of a
//! lookup per key (at 65,000 peers the lookups' string compares were most of the diff).

use std::collections::BTreeMap;
use std::iter::Peekable;

/// Every key of `a` or `b`, in order, with its value in each.
pub fn joined<'m, A, B>(
    a: &'m BTreeMap<String, A>,
    b: &'m BTreeMap<String, B>,
) -> impl Iterator<Item = (&'m String, Option<&'m A>, Option<&'m B>)> {
    Joined {
        a: a.iter().peekable(),
        b: b.iter().peekable(),
    }
}

struct Joined<I: Iterator, J: Iterator> {
    a: Peekable<I>,
    b: Peekable<J>,
}

impl<'m, A: 'm, B: 'm, I, J> Iterator for Joined<I, J>
where
    I: Iterator<Item = (&'m String, &'m A)>,
    J: Iterator<Item = (&'m String, &'m B)>,
{
    type Item = (&'m String, Option<&'m A>, Option<&'m B>);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        Some(match order {
            std::cmp::Ordering::Less => {
                let (k, va) = self.a.next()?;
                (k, Some(va), None)
            }
            std::cmp::Ordering::Greater => {
                let (k, vb) = self.b.next()?;
                (k, None, Some(vb))
            }
            std::cmp::Ordering::Equal => {
                let (k, va) = self.a.next()?;
                let (_, vb) = self.b.next()?;
                (k, Some(va), Some(vb))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_once_in_order_with_both_sides() {
        let a: BTreeMap<String, u8> = [("b", 1), ("c", 2), ("e", 3)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
        let b: BTreeMap<String, char> = [("a", 'x'), ("c", 'y'), ("f", 'z')]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
        let got: Vec<_> = joined(&a, &b)
            .map(|(k, x, y)| (k.as_str(), x.copied(), y.copied()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", None, Some('x')),
                ("b", Some(1), None),
                ("c", Some(2), Some('y')),
                ("e", Some(3), None),
                ("f", None, Some('z')),
            ]
        );
        assert_eq!(joined(&a, &BTreeMap::<String, u8>::new()).count(), 3);
    }
}
