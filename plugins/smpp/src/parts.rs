//! The message ids of the later parts of long texts, mapped to their first part's id
//! (the provider id the gateway keeps), so that a receipt naming any part finds its
//! SMS. Kept by the module, not by one session: an SMSC may push a receipt on another
//! bind than the submit's (with `transmitter_receiver`, always on the receiver), or
//! after the submit's session has been reconnected.

use std::collections::{HashMap, VecDeque};

/// How many later parts are remembered; the oldest are forgotten first. Receipts come
/// within minutes, and 100,000 ids are a few megabytes.
const KEPT: usize = 100_000;

#[derive(Debug, Default)]
pub struct PartIds {
    first_of: HashMap<String, String>,
    /// Later part ids, oldest first, to forget them in order.
    order: VecDeque<String>,
}

impl PartIds {
    /// Remembers that `later` is a part of the SMS whose first part is `first`.
    pub fn insert(&mut self, later: String, first: String) {
        if self.first_of.insert(later.clone(), first).is_none() {
            self.order.push_back(later);
        }
        while self.order.len() > KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.first_of.remove(&oldest);
            }
        }
    }

    /// The id a receipt naming `id` is about: the first part's when `id` is a later
    /// part, else `id` itself.
    pub fn first_part(&self, id: String) -> String {
        self.first_of.get(&id).cloned().unwrap_or(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_part_names_the_first_and_the_oldest_are_forgotten() {
        let mut parts = PartIds::default();
        parts.insert("b".into(), "a".into());
        assert_eq!(parts.first_part("b".into()), "a");
        assert_eq!(parts.first_part("a".into()), "a");
        for n in 0..KEPT {
            parts.insert(format!("later-{n}"), "first".into());
        }
        assert_eq!(parts.first_part("b".into()), "b", "the oldest is forgotten");
        assert_eq!(parts.first_part(format!("later-{}", KEPT - 1)), "first");
        assert_eq!(parts.order.len(), KEPT);
    }
}
