//! [`SettledChange`]: when to reload a watched source. A file being written (truncated, then
//! filled) must not be loaded half-way, so a change counts once its stamp has stayed the
//! same for one more poll.

/// Tracks a source's stamp (sizes and times) across polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledChange<T> {
    applied: T,
    pending: Option<T>,
}

impl<T: PartialEq + Clone> SettledChange<T> {
    /// Starting from the stamp of what is loaded now.
    pub fn new(applied: T) -> Self {
        SettledChange {
            applied,
            pending: None,
        }
    }

    /// Records this poll's stamp; true when a change has settled and should be loaded now.
    pub fn poll(&mut self, current: T) -> bool {
        if current == self.applied {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() != Some(&current) {
            self.pending = Some(current);
            return false;
        }
        self.pending = None;
        self.applied = current;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_loaded_once_it_stayed_the_same_for_one_more_poll() {
        let mut change = SettledChange::new(1);
        assert!(!change.poll(1));
        assert!(!change.poll(2), "first seen");
        assert!(!change.poll(3), "still moving");
        assert!(change.poll(3), "settled");
        assert!(!change.poll(3), "loaded already");
        assert!(!change.poll(4));
        assert!(!change.poll(3), "back to the loaded stamp: nothing to do");
    }
}
