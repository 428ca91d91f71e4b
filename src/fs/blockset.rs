//! A set of block numbers kept as runs.

use super::*;

/// A set of block numbers kept as runs: a write of many GiB allocates (or
/// frees) millions of blocks, mostly in long runs, so this stays small
/// where a hash set would grow with the data.
#[derive(Default, Debug)]
pub(super) struct BlockSet {
    /// First block of each run -> one past its last block.
    pub(super) runs: BTreeMap<u64, u64>,
    pub(super) count: u64,
}

impl BlockSet {
    pub(super) fn contains(&self, b: u64) -> bool {
        self.runs
            .range(..=b)
            .next_back()
            .is_some_and(|(_, &e)| b < e)
    }
    pub(super) fn insert_range(&mut self, start: u64, end: u64) {
        let mut b = start;
        while b < end {
            // Skip what is already in the set.
            if let Some((_, &e)) = self.runs.range(..=b).next_back().filter(|(_, &e)| b < e) {
                b = e;
                continue;
            }
            let next = self
                .runs
                .range(b..)
                .next()
                .map(|(&s, _)| s)
                .unwrap_or(u64::MAX);
            let stop = end.min(next);
            self.count += stop - b;
            // Merge with the run ending at b and the one starting at stop.
            let mut s = b;
            if let Some((&ps, &pe)) = self.runs.range(..b).next_back() {
                if pe == b {
                    s = ps;
                }
            }
            let mut e = stop;
            if let Some(ne) = self.runs.remove(&stop) {
                e = ne;
            }
            self.runs.insert(s, e);
            b = stop;
        }
    }
    pub(super) fn insert(&mut self, b: u64) {
        self.insert_range(b, b + 1);
    }
    pub(super) fn remove(&mut self, b: u64) {
        let Some((&s, &e)) = self.runs.range(..=b).next_back() else {
            return;
        };
        if b >= e {
            return;
        }
        self.count -= 1;
        self.runs.remove(&s);
        if s < b {
            self.runs.insert(s, b);
        }
        if b + 1 < e {
            self.runs.insert(b + 1, e);
        }
    }
    pub(super) fn len(&self) -> u64 {
        self.count
    }
    pub(super) fn clear(&mut self) {
        self.runs.clear();
        self.count = 0;
    }
}
