//! The queue's rules, on tokio's paused clock (time moves only when a test advances it).

use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;

fn key(s: &str) -> Key {
    s.into()
}

fn scheduler(options: Options) -> Scheduler {
    Scheduler::new(options, Jitter::seeded(42))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn popped_keys(s: &mut Scheduler, now: Instant) -> Vec<String> {
    std::iter::from_fn(|| s.pop(now)).map(|p| p.key.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn one_running_and_one_pending_per_key() {
    let mut s = scheduler(Options::default());
    let now = Instant::now();
    s.trigger(key("a"), Priority::Live, 10, now);
    s.trigger(key("a"), Priority::Live, 11, now);
    let first = s.pop(now).expect("a is due");
    assert_eq!((first.key.as_ref(), first.revision), ("a", 11));
    assert_eq!(s.pop(now), None, "merged into one run");
    s.trigger(key("a"), Priority::Live, 12, now);
    s.trigger(key("a"), Priority::Live, 13, now);
    assert_eq!(s.pop(now), None, "never twice at once");
    assert_eq!(s.counts().depth, 1);
    s.finish("a", Outcome::Done, now);
    let second = s.pop(now).expect("the change during the run runs after it");
    assert_eq!(second.revision, 13);
    s.finish("a", Outcome::Done, now);
    assert_eq!(s.pop(now), None);
    assert_eq!((s.counts().depth, s.counts().running, s.counts().started), (0, 0, 2));
    assert!(s.keys.is_empty(), "nothing kept for an idle key");
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let mut s = scheduler(Options { max_concurrency: 2, ..Options::default() });
    let now = Instant::now();
    for k in ["a", "b", "c", "d"] {
        s.trigger(key(k), Priority::Live, 1, now);
    }
    assert_eq!(popped_keys(&mut s, now), ["a", "b"]);
    assert_eq!(s.counts().running, 2);
    s.finish("b", Outcome::Done, now);
    assert_eq!(popped_keys(&mut s, now), ["c"]);
    // A requeue that falls due while every slot is taken waits as ready, not as a timer that
    // is already due (which would wake the queue's waiter over and over).
    s.finish("c", Outcome::RequeueAfter(ms(10)), now);
    assert_eq!(popped_keys(&mut s, now), ["d"]);
    advance(ms(10)).await;
    assert_eq!(s.pop(Instant::now()), None);
    assert_eq!(s.next_due(), None);
    s.finish("a", Outcome::Done, Instant::now());
    assert_eq!(popped_keys(&mut s, Instant::now()), ["c"]);
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_per_key_and_resets_on_success() {
    let backoff = Backoff { base: ms(100), max: ms(1_000) };
    let mut s = scheduler(Options { backoff, ..Options::default() });
    s.trigger(key("a"), Priority::Live, 1, Instant::now());
    let mut waits = vec![];
    for failures in 1..=4u32 {
        let started = Instant::now();
        assert!(s.pop(started).is_some());
        s.finish("a", Outcome::Retry(None), started);
        assert_eq!(s.failures("a"), failures);
        let due = s.next_due().expect("a retry is waiting");
        waits.push(due - started);
        assert!(due - started >= backoff.ceiling(failures) / 2 && due - started < backoff.ceiling(failures));
        advance(due - started - ms(1)).await;
        assert_eq!(s.pop(Instant::now()), None, "not before its backoff");
        advance(ms(1)).await;
    }
    assert!(waits.windows(2).all(|w| w[0] < w[1] || w[1] >= ms(500)), "grows: {waits:?}");
    let now = Instant::now();
    assert!(s.pop(now).is_some());
    s.finish("a", Outcome::Done, now);
    assert_eq!(s.failures("a"), 0);
    // Another key's failures are its own.
    s.trigger(key("b"), Priority::Live, 1, now);
    let b = s.pop(now).expect("b is due");
    assert_eq!(b.failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_requested_delay_is_kept_with_an_error_too() {
    let mut s = scheduler(Options::default());
    let now = Instant::now();
    s.trigger(key("a"), Priority::Live, 1, now);
    s.trigger(key("b"), Priority::Live, 1, now);
    s.pop(now);
    s.pop(now);
    s.finish("a", Outcome::Retry(Some(Duration::from_secs(30))), now);
    s.finish("b", Outcome::RequeueAfter(Duration::from_secs(20)), now);
    assert_eq!(s.failures("a"), 1);
    assert_eq!(s.failures("b"), 0);
    advance(Duration::from_secs(20) - ms(1)).await;
    assert_eq!(s.pop(Instant::now()), None);
    advance(ms(1)).await;
    assert_eq!(popped_keys(&mut s, Instant::now()), ["b"]);
    advance(Duration::from_secs(10) - ms(1)).await;
    assert_eq!(s.pop(Instant::now()), None, "the backoff (50 ms) does not replace the 30 s asked for");
    advance(ms(1)).await;
    let a = s.pop(Instant::now()).expect("a after 30 s");
    assert_eq!((a.key.as_ref(), a.failures), ("a", 1));
    assert_eq!((s.counts().retries, s.counts().requeues), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_change_runs_a_delayed_key_sooner_and_the_earliest_time_wins() {
    let mut s = scheduler(Options::default());
    let now = Instant::now();
    s.trigger(key("a"), Priority::Live, 1, now);
    s.pop(now);
    s.finish("a", Outcome::RequeueAfter(Duration::from_secs(60)), now);
    advance(Duration::from_secs(1)).await;
    s.trigger(key("a"), Priority::Live, 2, Instant::now());
    let a = s.pop(Instant::now()).expect("the change runs now");
    assert_eq!(a.revision, 2);
    // During that run: a change, then the run asks for 10 s: the change runs first.
    s.trigger(key("a"), Priority::Live, 3, Instant::now());
    s.finish("a", Outcome::RequeueAfter(Duration::from_secs(10)), Instant::now());
    assert_eq!(s.pop(Instant::now()).map(|p| p.revision), Some(3));
}

#[tokio::test(start_paused = true)]
async fn live_changes_go_before_the_initial_listing_and_aging_shares_the_slots() {
    let mut s = scheduler(Options { max_concurrency: 1, aging: ms(500), ..Options::default() });
    let start = Instant::now();
    for i in 0..100 {
        s.trigger(key(&format!("init-{i:03}")), Priority::Initial, 1, start);
    }
    assert_eq!(s.counts().initial_depth, 100);
    let first = s.pop(start).expect("initial keys run when nothing else waits");
    assert_eq!(first.priority, Priority::Initial);
    s.trigger(key("live-1"), Priority::Live, 2, start);
    s.finish(&first.key, Outcome::Done, start);
    assert_eq!(
        s.pop(start).map(|p| p.key.to_string()),
        Some("live-1".into()),
        "a live change jumps the queue"
    );
    s.finish("live-1", Outcome::Done, start);
    // After `aging`, with live changes always waiting, every other run is an initial key.
    advance(ms(500)).await;
    let now = Instant::now();
    let mut order = vec![];
    for i in 0..10 {
        s.trigger(key(&format!("live-x{i}")), Priority::Live, 3, now);
        s.trigger(key(&format!("live-y{i}")), Priority::Live, 3, now);
        for _ in 0..2 {
            let p = s.pop(now).expect("something is due");
            order.push(p.priority);
            s.finish(&p.key, Outcome::Done, now);
        }
    }
    let initial = order.iter().filter(|p| **p == Priority::Initial).count();
    assert_eq!(initial, 10, "half the slots: {order:?}");
    // A live change on a key of the listing takes the live priority.
    s.trigger(key("init-099"), Priority::Live, 4, now);
    assert_eq!(s.counts().initial_depth, 88);
}

#[tokio::test(start_paused = true)]
async fn debounce_waits_for_the_end_of_a_burst_up_to_a_maximum() {
    let mut s = scheduler(Options { debounce: ms(100), debounce_max: ms(250), ..Options::default() });
    s.trigger(key("a"), Priority::Live, 1, Instant::now());
    advance(ms(60)).await;
    s.trigger(key("a"), Priority::Live, 2, Instant::now());
    advance(ms(99)).await;
    assert_eq!(s.pop(Instant::now()), None, "100 ms after the last change, not the first");
    advance(ms(1)).await;
    assert_eq!(s.pop(Instant::now()).map(|p| p.revision), Some(2));
    s.finish("a", Outcome::Done, Instant::now());
    // A change every 50 ms: it still runs 250 ms after the first.
    let first = Instant::now();
    for revision in 3..20 {
        s.trigger(key("a"), Priority::Live, revision, Instant::now());
        if s.pop(Instant::now()).is_some() {
            break;
        }
        advance(ms(50)).await;
    }
    assert_eq!(Instant::now() - first, ms(250));
    // The initial listing is not debounced.
    s.trigger(key("b"), Priority::Initial, 1, Instant::now());
    assert_eq!(s.pop(Instant::now()).map(|p| p.key.to_string()), Some("b".into()));
}

#[tokio::test(start_paused = true)]
async fn terminal_stops_retrying_and_resets_the_backoff() {
    let mut s = scheduler(Options::default());
    let now = Instant::now();
    s.trigger(key("a"), Priority::Live, 1, now);
    s.pop(now);
    s.finish("a", Outcome::Retry(Some(ms(1))), now);
    advance(ms(1)).await;
    s.pop(Instant::now());
    s.finish("a", Outcome::Terminal, Instant::now());
    assert_eq!((s.failures("a"), s.next_due(), s.counts().terminal), (0, None, 1));
    advance(Duration::from_secs(3600)).await;
    assert_eq!(s.pop(Instant::now()), None);
}

#[test]
fn outcomes_parse_from_their_names() {
    assert_eq!(Outcome::parse("done", None).ok(), Some(Outcome::Done));
    assert_eq!(Outcome::parse("requeue", Some(1.5)).ok(), Some(Outcome::RequeueAfter(ms(1_500))));
    assert_eq!(Outcome::parse("retry", None).ok(), Some(Outcome::Retry(None)));
    assert_eq!(Outcome::parse("retry", Some(0.0)).ok(), Some(Outcome::Retry(Some(Duration::ZERO))));
    assert_eq!(Outcome::parse("terminal", None).ok(), Some(Outcome::Terminal));
    for (kind, after) in [("requeue", None), ("done", Some(1.0)), ("later", None), ("retry", Some(-1.0))] {
        assert!(Outcome::parse(kind, after).is_err(), "{kind} {after:?}");
    }
    assert!(seconds("x", f64::NAN).is_err());
}

mod invariants {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Trigger(u8, bool),
        Pop,
        Finish(usize, u8),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6, any::<bool>()).prop_map(|(k, live)| Op::Trigger(k, live)),
            Just(Op::Pop),
            (0usize..4, 0u8..5).prop_map(|(i, o)| Op::Finish(i, o)),
            (0u64..300).prop_map(Op::Advance),
        ]
    }

    fn outcome(o: u8) -> Outcome {
        match o {
            0 => Outcome::Done,
            1 => Outcome::RequeueAfter(ms(100)),
            2 => Outcome::Retry(None),
            3 => Outcome::Retry(Some(ms(50))),
            _ => Outcome::Terminal,
        }
    }

    proptest! {
        /// Whatever happens: a key never runs twice at once, at most `max_concurrency` run,
        /// the counts match the state, and every key triggered after its last run started
        /// runs again once the queue is drained.
        #[test]
        fn never_twice_at_once_and_nothing_lost(ops in proptest::collection::vec(op(), 1..200)) {
            let options = Options { max_concurrency: 2, debounce: ms(20), debounce_max: ms(60), ..Options::default() };
            let mut s = scheduler(options);
            let mut now = Instant::now();
            let mut running: Vec<Key> = vec![];
            let mut dirty: HashSet<Key> = HashSet::new();
            for op in ops {
                match op {
                    Op::Trigger(k, live) => {
                        let key = key(&format!("k{k}"));
                        dirty.insert(key.clone());
                        s.trigger(key, if live { Priority::Live } else { Priority::Initial }, 1, now);
                    }
                    Op::Pop => {
                        if let Some(p) = s.pop(now) {
                            prop_assert!(!running.contains(&p.key), "{} runs twice", p.key);
                            dirty.remove(&p.key);
                            running.push(p.key);
                        }
                    }
                    Op::Finish(i, o) => {
                        if !running.is_empty() {
                            let key = running.remove(i % running.len());
                            s.finish(&key, outcome(o), now);
                        }
                    }
                    Op::Advance(n) => now += ms(n),
                }
                prop_assert!(running.len() <= 2);
                let pending = s.keys.values().filter(|k| k.pending.is_some()).count();
                prop_assert_eq!(s.counts().depth, pending);
                prop_assert_eq!(s.counts().running, running.len());
            }
            // Drain: finish what runs, then run everything due, with `done`.
            for key in running.drain(..) {
                s.finish(&key, Outcome::Done, now);
            }
            let mut popped: HashMap<Key, usize> = HashMap::new();
            for _ in 0..100 {
                now += Duration::from_secs(600);
                while let Some(p) = s.pop(now) {
                    *popped.entry(p.key.clone()).or_default() += 1;
                    s.finish(&p.key, Outcome::Done, now);
                }
            }
            for key in &dirty {
                prop_assert!(popped.contains_key(key), "{key} was triggered and never ran");
            }
            prop_assert_eq!(s.counts().depth, 0);
            prop_assert!(s.keys.is_empty());
        }
    }
}
