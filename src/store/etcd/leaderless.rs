//! A member without a leader leaves the rotation (issue #22).
//!
//! A member cut off from its peers but not from the client answers every request "no leader"
//! (`etcdserver: no leader`, gRPC `Unavailable`: the client sends etcd's `hasleader`
//! metadata, see `with_require_leader`) for as long as the partition lasts. Every member
//! answers so for a moment during an election, so one such answer ejects nothing; a member
//! that has answered only "no leader" for longer than an election timeout
//! ([`ELECTION_TIMEOUT`], etcd's default, or the client's `election_timeout`) is ejected as a
//! silent one is (`endpoints`), and the probes keep it out until one finds it has a leader
//! again (the probe is a linearizable read, which the member refuses the same way until
//! then). Any other answer from it ends the streak. A single endpoint is never ejected.
//!
//! A write refused "no leader" was never applied: etcd refuses it in its gRPC interceptor,
//! before the request reaches the server's handler and Raft (the file, function and lines are
//! in `docs/decisions.md`, "A member without a leader"). So the request policy sends it again
//! to another endpoint, as a write that never left (`policy`).

use std::error::Error as _;
use std::time::Duration;

use tokio::time::Instant;

/// etcd's default election timeout (`--election-timeout=1000`, milliseconds).
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The message of etcd's `rpctypes.ErrGRPCNoLeader`.
pub const NO_LEADER: &str = "etcdserver: no leader";

/// Whether etcd answered "no leader": its own status (no transport error beneath), code
/// `Unavailable`, that message.
pub fn is_no_leader(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable && status.message() == NO_LEADER && status.source().is_none()
}

/// How long a member has been answering "no leader" (one per endpoint).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    /// The first "no leader" answer since its last other answer.
    since: Option<Instant>,
}

impl Streak {
    /// It answered "no leader" at `now`. Returns whether it has answered only so for longer
    /// than `after`: it leaves the rotation.
    pub fn refused(&mut self, now: Instant, after: Duration) -> bool {
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) > after
    }

    /// It answered something else: it has a leader (or answered before needing one).
    pub fn answered(&mut self) {
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use etcd_client::ConnectOptions;
    use tokio_util::sync::CancellationToken;

    use super::super::endpoints::{Endpoints, Outcome};
    use super::*;

    /// `n` endpoints that nothing probes (the client is closed for the prober).
    fn endpoints(n: usize) -> Arc<Endpoints> {
        let urls: Vec<String> = (0..n).map(|i| format!("http://127.0.0.1:{}", 1 + i)).collect();
        let second = Duration::from_secs(1);
        let closed = CancellationToken::new();
        closed.cancel();
        Endpoints::new(&urls, ConnectOptions::new(), second, second, ELECTION_TIMEOUT, closed)
    }

    #[test]
    fn the_message_etcd_sends_and_nothing_else_is_no_leader() {
        assert!(is_no_leader(&tonic::Status::unavailable(NO_LEADER)));
        assert!(!is_no_leader(&tonic::Status::unavailable("etcdserver: request timed out")));
        assert!(!is_no_leader(&tonic::Status::deadline_exceeded(NO_LEADER)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_streak_longer_than_the_timeout_ejects_and_another_answer_ends_it() {
        let after = ELECTION_TIMEOUT;
        let mut s = Streak::default();
        assert!(!s.refused(Instant::now(), after), "one answer during an election");
        tokio::time::advance(after).await;
        assert!(!s.refused(Instant::now(), after), "not longer than the timeout yet");
        s.answered();
        tokio::time::advance(after / 2).await;
        assert!(!s.refused(Instant::now(), after), "a new streak");
        tokio::time::advance(after + Duration::from_millis(1)).await;
        assert!(s.refused(Instant::now(), after));
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_leaderless_longer_than_an_election_timeout_leaves_until_it_has_one() {
        let e = endpoints(3);
        let (_guard, token) = e.begin(1);
        e.record(1, Outcome::Leaderless);
        tokio::time::advance(ELECTION_TIMEOUT / 2).await;
        e.record(1, Outcome::Leaderless);
        assert!(e.is_healthy(1), "an election's worth of 'no leader' ejects nothing");
        tokio::time::advance(ELECTION_TIMEOUT / 2 + Duration::from_millis(1)).await;
        e.record(1, Outcome::Leaderless);
        assert!(!e.is_healthy(1), "longer than an election timeout: ejected");
        assert!(token.is_cancelled(), "reads and watches on it move");
        for _ in 0..6 {
            assert_ne!(e.pick(&[]), 1, "out of the rotation for every request");
        }
        e.record(1, Outcome::Leaderless);
        assert!(!e.is_healthy(1), "a 'no leader' answer does not re-admit it");
        e.record(1, Outcome::Answered);
        assert!(e.is_healthy(1), "it has a leader again (a probe or a request answered)");
        e.record(1, Outcome::Leaderless);
        assert!(e.is_healthy(1), "the streak starts over");
        let s = &e.snapshot()[1];
        assert_eq!((s.ejections, s.failures), (1, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn another_answer_ends_the_streak_and_a_single_endpoint_stays() {
        let e = endpoints(2);
        e.record(0, Outcome::Leaderless);
        tokio::time::advance(ELECTION_TIMEOUT).await;
        e.record(0, Outcome::Answered);
        tokio::time::advance(ELECTION_TIMEOUT).await;
        e.record(0, Outcome::Leaderless);
        assert!(e.is_healthy(0), "a new streak after an answer");
        let one = endpoints(1);
        one.record(0, Outcome::Leaderless);
        tokio::time::advance(ELECTION_TIMEOUT * 10).await;
        one.record(0, Outcome::Leaderless);
        assert!(one.is_healthy(0), "a single endpoint is never ejected");
        assert_eq!(one.pick(&[0]), 0);
    }
}
