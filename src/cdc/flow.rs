//! Pull flow control for one Subscribe stream: how many events to ask for and when.
//!
//! The server delivers at most what is outstanding (the sum of `num_requested` not yet
//! delivered) and reports what it still owes as `pending_num_requested` in every response.
//! The subscriber asks for `batch_size` (1–100) first; after each response it takes the
//! server's count as the truth and, once the server owes half a batch or less, tops the
//! outstanding count back up to `batch_size`. A top-up in flight while the server reports
//! can make the server owe up to two batches for a moment; never more.

/// The most events one FetchRequest may ask for (Salesforce's limit).
pub const MAX_NUM_REQUESTED: i32 = 100;

/// Flow-control state of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    batch: i32,
    /// What the server owes as far as we know.
    outstanding: i32,
}

impl Flow {
    /// A stream that will ask for `batch_size` events at a time (clamped to 1–100).
    pub fn new(batch_size: i32) -> Flow {
        Flow {
            batch: batch_size.clamp(1, MAX_NUM_REQUESTED),
            outstanding: 0,
        }
    }

    /// The events per request.
    pub fn batch(&self) -> i32 {
        self.batch
    }

    /// What the first FetchRequest asks for; counts it as outstanding.
    pub fn initial(&mut self) -> i32 {
        self.outstanding = self.batch;
        self.batch
    }

    /// Records a response: the server now owes `pending_num_requested` (negative values
    /// from a broken server count as 0).
    pub fn on_response(&mut self, pending_num_requested: i32) {
        self.outstanding = pending_num_requested.clamp(0, 2 * MAX_NUM_REQUESTED);
    }

    /// How many events to ask for now, if any; counts them as outstanding.
    pub fn top_up(&mut self) -> Option<i32> {
        if self.outstanding > self.batch / 2 {
            return None;
        }
        let n = self.batch - self.outstanding;
        self.outstanding = self.batch;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_is_clamped_to_the_limit() {
        assert_eq!(Flow::new(0).batch(), 1);
        assert_eq!(Flow::new(-5).batch(), 1);
        assert_eq!(Flow::new(50).batch(), 50);
        assert_eq!(Flow::new(1000).batch(), 100);
    }

    #[test]
    fn tops_up_to_the_batch_once_half_is_delivered() {
        let mut f = Flow::new(100);
        assert_eq!(f.initial(), 100);
        assert_eq!(f.top_up(), None, "nothing delivered yet");
        f.on_response(60);
        assert_eq!(f.top_up(), None, "the server still owes more than half");
        f.on_response(50);
        assert_eq!(f.top_up(), Some(50));
        assert_eq!(f.top_up(), None, "the top-up counts as outstanding");
        f.on_response(0);
        assert_eq!(f.top_up(), Some(100));
    }

    #[test]
    fn never_asks_for_more_than_the_limit() {
        let mut f = Flow::new(100);
        f.initial();
        for pending in [-7, 0, 1, 49, 50, 51, 99, 100, 150, 400, i32::MAX, i32::MIN] {
            f.on_response(pending);
            if let Some(n) = f.top_up() {
                assert!((1..=MAX_NUM_REQUESTED).contains(&n), "{pending} → {n}");
            }
        }
    }

    #[test]
    fn a_keepalive_with_nothing_owed_asks_again() {
        let mut f = Flow::new(1);
        f.initial();
        f.on_response(0);
        assert_eq!(f.top_up(), Some(1));
        f.on_response(1);
        assert_eq!(f.top_up(), None);
    }
}
