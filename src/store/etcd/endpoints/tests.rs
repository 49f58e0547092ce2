//! Endpoint health: ejection, probes and their backoff, routing.

use super::*;

fn endpoints(n: usize) -> Arc<Endpoints> {
    let urls: Vec<String> = (0..n).map(|i| format!("http://127.0.0.1:{}", 1 + i)).collect();
    let second = Duration::from_secs(1);
    Endpoints::new(&urls, ConnectOptions::new(), second, second, second, CancellationToken::new())
}

#[test]
fn a_failure_ejects_and_an_answer_readmits() {
    let t0 = Instant::now();
    let mut h = Health::Healthy;
    assert_eq!(h.due(), None);
    assert!(h.fail(t0), "the first failure ejects");
    assert!(!h.fail(t0), "an ejected endpoint is not ejected again");
    assert!(!h.is_healthy());
    assert_eq!(h.due(), Some(t0 + PROBE_FIRST));
    assert!(h.answer(), "an answer re-admits");
    assert!(h.is_healthy());
    assert!(!h.answer());
}

#[test]
fn probes_run_one_at_a_time_and_back_off_up_to_the_maximum() {
    let t0 = Instant::now();
    let mut h = Health::Healthy;
    h.fail(t0);
    assert!(!h.start_probe(t0), "not due yet");
    assert!(h.start_probe(t0 + PROBE_FIRST));
    assert_eq!(h.due(), None, "a probe is running");
    assert!(!h.start_probe(t0 + PROBE_MAX), "one probe at a time");
    let mut now = t0 + PROBE_FIRST;
    let mut pauses = Vec::new();
    for _ in 0..8 {
        h.probe_failed(now, 1.0);
        let due = h.due().expect("still ejected");
        pauses.push(due - now);
        now = due;
        assert!(h.start_probe(now));
    }
    assert_eq!(pauses[0], PROBE_FIRST * 2);
    assert_eq!(pauses[1], PROBE_FIRST * 4);
    assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
    assert_eq!(*pauses.last().expect("pauses"), PROBE_MAX);
    h.probe_failed(now, 0.5);
    assert_eq!(h.due(), Some(now + PROBE_MAX / 2), "jitter shortens the pause");
    assert!(h.answer());
    assert_eq!(h.due(), None);
    h.fail(now);
    assert_eq!(h.due(), Some(now + PROBE_FIRST), "a new ejection starts the backoff over");
}

#[test]
fn requests_go_to_healthy_untried_idle_endpoints() {
    let e = endpoints(3);
    // In turn while all are equal.
    let picks: Vec<usize> = (0..3).map(|_| e.pick(&[])).collect();
    let mut sorted = picks.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2], "{picks:?}");
    // The fewest in flight.
    let (_a, _) = e.begin(0);
    let (_b, _) = e.begin(1);
    for _ in 0..6 {
        assert_eq!(e.pick(&[]), 2);
    }
    // Not one already tried, while another is healthy.
    assert_ne!(e.pick(&[2]), 2);
    // Never an ejected one while another is healthy, even busier or tried.
    e.record(2, Outcome::Silent);
    for _ in 0..6 {
        assert_ne!(e.pick(&[0, 1]), 2);
    }
    // Every endpoint ejected: one is picked anyway.
    e.record(0, Outcome::Broken);
    e.record(1, Outcome::NotSent);
    assert!(e.snapshot().iter().all(|s| !s.healthy));
    assert_eq!(e.pick(&[0, 1]), 2, "the one not tried yet");
    e.record(1, Outcome::Answered);
    assert_eq!(e.pick(&[1]), 1, "the healthy one, even tried");
}

#[test]
fn a_single_endpoint_is_never_ejected() {
    let e = endpoints(1);
    let (_guard, token) = e.begin(0);
    e.record(0, Outcome::Silent);
    assert!(!token.is_cancelled());
    let s = &e.snapshot()[0];
    assert_eq!((s.healthy, s.failures, s.ejections), (true, 1, 0));
    assert_eq!(e.pick(&[0]), 0);
}

#[test]
fn ejection_cancels_the_token_of_requests_in_flight_and_counts() {
    let e = endpoints(2);
    let (guard, token) = e.begin(1);
    e.record(1, Outcome::Answered);
    assert!(!token.is_cancelled());
    e.record(1, Outcome::Silent);
    assert!(token.is_cancelled());
    let (_, fresh) = e.begin(1);
    assert!(!fresh.is_cancelled(), "a request sent later gets a fresh token");
    e.record(1, Outcome::Silent);
    assert!(!fresh.is_cancelled(), "already ejected: nothing new to cancel");
    drop(guard);
    let s = &e.snapshot()[1];
    assert_eq!((s.healthy, s.requests, s.in_flight, s.failures, s.ejections), (false, 2, 0, 2, 1));
    let watching = e.watching(0);
    assert_eq!(e.snapshot()[0].watches, 1);
    drop(watching);
    assert_eq!(e.snapshot()[0].watches, 0);
}

#[test]
fn errors_are_classified_by_whether_etcd_sent_them() {
    let sent = tonic::Status::unavailable("etcdserver: too many requests");
    assert_eq!(classify(&etcd_client::Error::GRpcStatus(sent)), Outcome::Answered);
    let no_leader = tonic::Status::unavailable("etcdserver: no leader");
    assert_eq!(classify(&etcd_client::Error::GRpcStatus(no_leader)), Outcome::Leaderless);
    let refused = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    )))));
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(classify(&etcd_client::Error::GRpcStatus(refused)), Outcome::NotSent);
    let expired = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
    assert_eq!(classify(&etcd_client::Error::GRpcStatus(expired)), Outcome::Silent);
    let reset =
        tonic::Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
    assert_eq!(classify(&etcd_client::Error::GRpcStatus(reset)), Outcome::Broken);
    let io = etcd_client::Error::IoError(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    assert_eq!(classify(&io), Outcome::Broken);
    assert_eq!(classify(&etcd_client::Error::InvalidArgs("x".into())), Outcome::Answered);
    assert!(not_serving(&etcd_client::Error::GRpcStatus(tonic::Status::unavailable("no leader"))));
    assert!(!not_serving(&etcd_client::Error::GRpcStatus(tonic::Status::permission_denied("no"))));
}
