//! `EventBus`: numbered events, a bounded replay buffer, and subscribers
//! that can resume where they left off.
//!
//! ```text
//!  publish(e) ──▶ seq = n+1 ──▶ ring buffer (last `capacity` events)
//!                         └───▶ every subscriber's bounded channel (try_send)
//! ```
//!
//! - Every published event gets a `seq`: 1 for the first event of the
//!   process, +1 for each following one, across all objects and kinds.
//! - The bus keeps the last `capacity` events (256 by default) in a ring.
//! - [`EventBus::subscribe`] with `resume_after: Some(n)` first yields the
//!   buffered events with `seq > n`, then the live ones, with nothing lost or
//!   doubled in between (both happen under the bus lock). When events after
//!   `n` have already left the ring, the first item is
//!   [`Item::Lost`] with the oldest `seq` still available, then replay
//!   continues from there.
//! - Publishers never wait for subscribers: each subscriber has a bounded
//!   channel, and a publish that finds it full detaches that subscriber
//!   instead of blocking. The subscriber notices when it has drained its
//!   channel and re-attaches itself with `resume_after` = the last `seq` it
//!   delivered: the ring usually still holds what it missed (no loss at
//!   all); otherwise it yields [`Item::Lost`] and carries on from the oldest
//!   buffered event.
//! - [`EventBus::close`] ends every subscription (daemon shutdown).
//!
//! The lock is a `std::sync::Mutex` held only while numbering, buffering
//! and `try_send`ing; it is never held across an `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::mpsc;

/// Default number of events kept for replay: enough for a watcher that
/// reconnects after a restart of its own or a short outage (libvirt keeps
/// none). Each kept event is a few small allocations that live long among
/// the calls' short-lived ones; a larger ring pins that many more heap
/// pages of a daemon that otherwise runs in a few MiB.
pub const DEFAULT_CAPACITY: usize = 256;

/// Default depth of a subscriber's channel.
pub const DEFAULT_SUBSCRIBER_DEPTH: usize = 256;

/// One published event.
#[derive(Debug)]
pub struct Event<E> {
    /// Its sequence number (1, 2, 3, ... per process).
    pub seq: u64,
    /// When it was published.
    pub time: SystemTime,
    /// What happened.
    pub payload: E,
}

/// What a subscription yields.
#[derive(Debug)]
pub enum Item<E> {
    /// An event.
    Event(Arc<Event<E>>),
    /// Events were dropped from the buffer before this subscriber could
    /// get them; the next event has `seq >= first_available`.
    Lost {
        /// The oldest `seq` still available.
        first_available: u64,
    },
}

impl<E> Clone for Item<E> {
    fn clone(&self) -> Self {
        match self {
            Item::Event(e) => Item::Event(e.clone()),
            Item::Lost { first_available } => Item::Lost {
                first_available: *first_available,
            },
        }
    }
}

#[derive(Debug)]
struct State<E> {
    /// The seq of the last event published (0: none yet).
    last_seq: u64,
    ring: VecDeque<Arc<Event<E>>>,
    subscribers: Vec<mpsc::Sender<Arc<Event<E>>>>,
    closed: bool,
}

#[derive(Debug)]
struct Shared<E> {
    capacity: usize,
    depth: usize,
    state: Mutex<State<E>>,
}

impl<E> Shared<E> {
    // Every update of the state is complete before anything that could
    // panic, so a poisoned lock still guards a consistent state.
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replay after `resume_after`, a receiver for what follows, and the
    /// seq the subscriber is now at; `None` once the bus is closed.
    fn attach(&self, resume_after: Option<u64>) -> Option<Attached<E>> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        // A resume point from the future (another daemon process) counts
        // as "up to date": live events only.
        let at = resume_after.map_or(st.last_seq, |a| a.min(st.last_seq));
        let mut replay = VecDeque::new();
        if let Some(after) = resume_after
            && after < st.last_seq
        {
            // Events after `after` were published; are they all here?
            let oldest = st.ring.front().map_or(st.last_seq + 1, |e| e.seq);
            if oldest > after + 1 {
                replay.push_back(Item::Lost {
                    first_available: oldest,
                });
            }
            replay.extend(
                st.ring
                    .iter()
                    .filter(|e| e.seq > after)
                    .map(|e| Item::Event(e.clone())),
            );
        }
        // Subscribers that went away since the last publish are dropped
        // here too: on a bus with no events, watches opened and closed
        // would otherwise each keep a channel until the next publish.
        st.subscribers.retain(|tx| !tx.is_closed());
        let (tx, rx) = mpsc::channel(self.depth);
        st.subscribers.push(tx);
        Some(Attached { replay, rx, at })
    }
}

struct Attached<E> {
    replay: VecDeque<Item<E>>,
    rx: mpsc::Receiver<Arc<Event<E>>>,
    at: u64,
}

/// The bus. Cheap to clone (a handle).
#[derive(Debug)]
pub struct EventBus<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for EventBus<E> {
    fn clone(&self) -> Self {
        EventBus {
            shared: self.shared.clone(),
        }
    }
}

impl<E> Default for EventBus<E> {
    fn default() -> Self {
        EventBus::new(DEFAULT_CAPACITY, DEFAULT_SUBSCRIBER_DEPTH)
    }
}

// === impl EventBus ===

impl<E> EventBus<E> {
    /// A bus keeping `capacity` events for replay, with channels of
    /// `depth` events per subscriber (both at least 1).
    ///
    /// # Examples
    /// ```
    /// use common::events::{EventBus, Item};
    /// # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
    /// let bus: EventBus<&str> = EventBus::new(4, 4);
    /// assert_eq!(bus.publish("defined"), 1);
    /// let mut sub = bus.subscribe(Some(0));
    /// match sub.next().await {
    ///     Some(Item::Event(e)) => assert_eq!((e.seq, e.payload), (1, "defined")),
    ///     other => panic!("{other:?}"),
    /// }
    /// # });
    /// ```
    pub fn new(capacity: usize, depth: usize) -> EventBus<E> {
        EventBus {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                depth: depth.max(1),
                state: Mutex::new(State {
                    last_seq: 0,
                    ring: VecDeque::new(),
                    subscribers: Vec::new(),
                    closed: false,
                }),
            }),
        }
    }

    /// Publishes `payload`; returns its `seq`. Never waits: a subscriber
    /// whose channel is full is detached (it resumes from the ring).
    pub fn publish(&self, payload: E) -> u64 {
        let mut st = self.shared.lock();
        st.last_seq += 1;
        let ev = Arc::new(Event {
            seq: st.last_seq,
            time: SystemTime::now(),
            payload,
        });
        if st.ring.len() == self.shared.capacity {
            st.ring.pop_front();
        }
        st.ring.push_back(ev.clone());
        // Full or gone: either way the sender is dropped here. A full
        // subscriber sees its channel end after draining it and resumes.
        st.subscribers.retain(|tx| tx.try_send(ev.clone()).is_ok());
        ev.seq
    }

    /// The seq of the last event published (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.shared.lock().last_seq
    }

    /// The oldest seq still buffered, if any event is.
    pub fn first_available(&self) -> Option<u64> {
        self.shared.lock().ring.front().map(|e| e.seq)
    }

    /// Subscribes: buffered events after `resume_after` (none when
    /// `None`), then live events. See the module docs.
    pub fn subscribe(&self, resume_after: Option<u64>) -> Subscription<E> {
        match self.shared.attach(resume_after) {
            Some(a) => Subscription {
                shared: self.shared.clone(),
                pending: a.replay,
                rx: Some(a.rx),
                last_seq: a.at,
            },
            None => Subscription {
                shared: self.shared.clone(),
                pending: VecDeque::new(),
                rx: None,
                last_seq: resume_after.unwrap_or(0),
            },
        }
    }

    /// How many subscribers are attached (detached slow ones not counted).
    pub fn subscriber_count(&self) -> usize {
        let mut st = self.shared.lock();
        st.subscribers.retain(|tx| !tx.is_closed());
        st.subscribers.len()
    }

    /// Ends every subscription (after what they already hold) and refuses
    /// new ones; publishing still numbers and buffers events.
    pub fn close(&self) {
        let mut st = self.shared.lock();
        st.closed = true;
        st.subscribers.clear();
    }
}

/// One subscriber's stream of [`Item`]s.
#[derive(Debug)]
pub struct Subscription<E> {
    shared: Arc<Shared<E>>,
    pending: VecDeque<Item<E>>,
    rx: Option<mpsc::Receiver<Arc<Event<E>>>>,
    /// The last seq handed out (or resumed after).
    last_seq: u64,
}

// === impl Subscription ===

impl<E> Subscription<E> {
    /// The next item; `None` once the bus is closed and everything
    /// received has been handed out.
    pub async fn next(&mut self) -> Option<Item<E>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                match &item {
                    Item::Event(e) if e.seq <= self.last_seq => continue,
                    Item::Event(e) => self.last_seq = e.seq,
                    Item::Lost { first_available } => {
                        self.last_seq = first_available.saturating_sub(1);
                    }
                }
                return Some(item);
            }
            let rx = self.rx.as_mut()?;
            match rx.recv().await {
                Some(ev) => self.pending.push_back(Item::Event(ev)),
                None => {
                    // Detached (we were too slow) or the bus closed:
                    // resume from the ring after what we delivered.
                    self.rx = None;
                    let a = self.shared.attach(Some(self.last_seq))?;
                    self.pending = a.replay;
                    self.rx = Some(a.rx);
                }
            }
        }
    }

    /// The last seq this subscription handed out.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn next_event(sub: &mut Subscription<u32>) -> (u64, u32) {
        match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
            Ok(Some(Item::Event(e))) => (e.seq, e.payload),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    async fn nothing_pending(sub: &mut Subscription<u32>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sub.next())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn seq_starts_at_one_and_counts_every_event() {
        let bus = EventBus::new(8, 8);
        assert_eq!(bus.last_seq(), 0);
        assert_eq!(bus.first_available(), None);
        assert_eq!(bus.publish(10), 1);
        assert_eq!(bus.publish(11), 2);
        assert_eq!(bus.publish(12), 3);
        assert_eq!(bus.last_seq(), 3);
        assert_eq!(bus.first_available(), Some(1));
    }

    #[tokio::test]
    async fn live_subscription_sees_only_new_events() {
        let bus = EventBus::new(8, 8);
        bus.publish(1);
        let mut sub = bus.subscribe(None);
        assert!(nothing_pending(&mut sub).await);
        bus.publish(2);
        bus.publish(3);
        assert_eq!(next_event(&mut sub).await, (2, 2));
        assert_eq!(next_event(&mut sub).await, (3, 3));
    }

    #[tokio::test]
    async fn resume_replays_then_continues_live() {
        let bus = EventBus::new(8, 8);
        for i in 1..=5 {
            bus.publish(i);
        }
        let mut sub = bus.subscribe(Some(3));
        assert_eq!(next_event(&mut sub).await, (4, 4));
        assert_eq!(next_event(&mut sub).await, (5, 5));
        assert!(nothing_pending(&mut sub).await);
        bus.publish(6);
        assert_eq!(next_event(&mut sub).await, (6, 6));
        // Up to date, or from the future (another process): live only.
        let mut sub = bus.subscribe(Some(6));
        assert!(nothing_pending(&mut sub).await);
        let mut sub = bus.subscribe(Some(100));
        assert!(nothing_pending(&mut sub).await);
        bus.publish(7);
        assert_eq!(next_event(&mut sub).await, (7, 7));
        // From the start.
        let mut sub = bus.subscribe(Some(0));
        assert_eq!(next_event(&mut sub).await, (1, 1));
    }

    #[tokio::test]
    async fn too_old_resume_reports_lost_first() {
        let bus = EventBus::new(4, 8);
        for i in 1..=10 {
            bus.publish(i);
        }
        assert_eq!(bus.first_available(), Some(7));
        let mut sub = bus.subscribe(Some(2));
        match sub.next().await {
            Some(Item::Lost { first_available }) => assert_eq!(first_available, 7),
            other => panic!("{other:?}"),
        }
        for s in 7..=10 {
            assert_eq!(
                next_event(&mut sub).await,
                (s, u32::try_from(s).expect("small"))
            );
        }
        // Resuming right before the oldest buffered event loses nothing.
        let mut sub = bus.subscribe(Some(6));
        assert_eq!(next_event(&mut sub).await, (7, 7));
    }

    #[test]
    fn subscriptions_dropped_without_events_are_not_kept() {
        // A watch opened and closed again and again on a bus that publishes
        // nothing: the bus keeps no channel of the closed ones (found
        // while profiling the load run: each kept ~1 KB of the daemon's
        // memory until the next event).
        let bus: EventBus<u32> = EventBus::new(8, 8);
        for _ in 0..100 {
            drop(bus.subscribe(None));
        }
        let live = bus.subscribe(None);
        assert_eq!(bus.shared.lock().subscribers.len(), 1);
        drop(live);
    }

    #[tokio::test]
    async fn slow_subscriber_never_blocks_and_resyncs_from_the_ring() {
        let bus = EventBus::new(16, 2);
        let mut sub = bus.subscribe(None);
        // The channel holds 2; the rest detaches the subscriber, but the
        // ring still has everything: nothing is lost.
        for i in 1..=10 {
            bus.publish(i);
        }
        assert_eq!(bus.subscriber_count(), 0);
        for s in 1..=10 {
            assert_eq!(
                next_event(&mut sub).await,
                (s, u32::try_from(s).expect("small"))
            );
        }
        assert_eq!(bus.subscriber_count(), 1);
        bus.publish(11);
        assert_eq!(next_event(&mut sub).await, (11, 11));
    }

    #[tokio::test]
    async fn slow_subscriber_past_the_ring_gets_lost() {
        let bus = EventBus::new(4, 2);
        let mut sub = bus.subscribe(None);
        for i in 1..=20 {
            bus.publish(i);
        }
        // The two events in its channel, then the loss, then the ring.
        assert_eq!(next_event(&mut sub).await, (1, 1));
        assert_eq!(next_event(&mut sub).await, (2, 2));
        match sub.next().await {
            Some(Item::Lost { first_available }) => assert_eq!(first_available, 17),
            other => panic!("{other:?}"),
        }
        for s in 17..=20 {
            assert_eq!(
                next_event(&mut sub).await,
                (s, u32::try_from(s).expect("small"))
            );
        }
        assert!(nothing_pending(&mut sub).await);
    }

    #[tokio::test]
    async fn concurrent_publishers_get_distinct_consecutive_seqs() {
        let bus: EventBus<u32> = EventBus::new(1024, 1024);
        let mut sub = bus.subscribe(None);
        let mut tasks = Vec::new();
        for t in 0..4 {
            let bus = bus.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    bus.publish(t * 1000 + i);
                }
            }));
        }
        for t in tasks {
            t.await.expect("publisher");
        }
        for s in 1..=400 {
            assert_eq!(next_event(&mut sub).await.0, s);
        }
    }

    #[tokio::test]
    async fn close_ends_subscriptions() {
        let bus = EventBus::new(4, 4);
        let mut sub = bus.subscribe(None);
        bus.publish(1);
        bus.close();
        assert_eq!(next_event(&mut sub).await, (1, 1));
        assert!(sub.next().await.is_none());
        let mut late = bus.subscribe(Some(0));
        assert!(late.next().await.is_none());
    }
}
