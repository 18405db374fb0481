//! What the cluster committed at each index, as first reported by a node.
//!
//! The simulator's checks say *that* a committed entry was lost; the page
//! also has to show *which* cell of which log now holds something else. So
//! the driver notes the term of every entry the moment some node first reports
//! it committed, and a log entry at a committed index with another term is
//! flagged: it overwrote (or will overwrite) a committed entry. On a correct
//! build nothing is ever flagged; with `commit_old_term` the Figure 8 scenario
//! flags the cell where the new leader's entry replaced the committed one.

use raft_core::{Index, Term};

/// Terms of committed entries, as runs: `(first index, term)`, in index order.
/// Term 0 marks indexes whose entry was already compacted when its commit
/// was reported (unknown; never flagged).
#[derive(Clone, Debug, Default)]
pub struct CommittedTerms {
    runs: Vec<(Index, Term)>,
    len: Index,
}

impl CommittedTerms {
    /// Highest index recorded.
    pub fn len(&self) -> Index {
        self.len
    }

    /// Nothing recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records indexes `len+1..=upto`, asking `term_at` for each (None: unknown).
    pub fn extend(&mut self, upto: Index, term_at: impl Fn(Index) -> Option<Term>) {
        for i in self.len + 1..=upto {
            let t = term_at(i).unwrap_or(0);
            match self.runs.last() {
                Some(&(_, last)) if last == t => {}
                _ => self.runs.push((i, t)),
            }
        }
        self.len = self.len.max(upto);
    }

    /// The term committed at `index`, if recorded and known.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == 0 || index > self.len {
            return None;
        }
        let k = self.runs.partition_point(|&(start, _)| start <= index);
        match self.runs[k - 1].1 {
            0 => None,
            t => Some(t),
        }
    }

    /// Whether an entry `(index, term)` contradicts what was committed there.
    pub fn conflicts(&self, index: Index, term: Term) -> bool {
        self.term(index).is_some_and(|t| t != term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_answer_every_index_and_flag_only_other_terms() {
        let mut c = CommittedTerms::default();
        let terms = [1, 1, 1, 2, 2, 5];
        c.extend(6, |i| Some(terms[i as usize - 1]));
        assert_eq!(c.runs.len(), 3, "equal terms share a run");
        for (i, &t) in terms.iter().enumerate() {
            assert_eq!(c.term(i as Index + 1), Some(t));
        }
        assert_eq!(c.term(0), None);
        assert_eq!(c.term(7), None);
        assert!(c.conflicts(4, 3));
        assert!(!c.conflicts(4, 2));
        assert!(!c.conflicts(9, 1), "past the record nothing conflicts");
        // A commit reported again, or lower, changes nothing; unknown terms never conflict.
        c.extend(3, |_| Some(9));
        assert_eq!(c.term(3), Some(1));
        c.extend(8, |i| if i == 7 { None } else { Some(5) });
        assert_eq!(c.term(7), None);
        assert!(!c.conflicts(7, 1));
        assert_eq!(c.term(8), Some(5));
    }
}
