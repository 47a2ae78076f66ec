//! How many SOAP calls may be in flight towards OX at once: a limit that adapts to what OX shows
//! (`docs/ox-provisioning.md`, "Concurrency towards OX").
//!
//! OX's admin API is a shared server with a limited number of worker threads. Beyond them, calls
//! queue inside OX: latency climbs while throughput stays the same, and an overloaded OX answers
//! with transient faults. The limiter finds that knee the way TCP Vegas (and Netflix's
//! concurrency-limits `VegasLimit`) does, with an AIMD back-off on faults:
//!
//! - The **latency floor** is the shortest call seen (over the last `FLOOR_ROUNDS` rounds, so
//!   that a permanently slower OX raises it again): what a call costs without queueing.
//! - Once per **round** (as many calls as the limit) the round's mean latency `rtt` gives the
//!   estimated number of calls queueing in OX: `queue = limit × (1 − (floor + slack) / rtt)`
//!   (`slack`, 1 ms, keeps scheduling noise of fast answers from looking like a queue).
//! - `queue < ALPHA` (2) and the limit was used (calls in flight reached it during the round):
//!   **grow** by one. `queue > BETA` (4): **shrink** by one. In between: hold.
//! - A **transient fault** (connection refused or reset, timeout, HTTP 5xx, OX's "try again"
//!   faults) halves the limit at once (at most once per round).
//! - Always between 1 and the maximum (`--apply-concurrency`).
//!
//! Why Vegas rather than plain AIMD on latency: AIMD needs a loss signal and keeps probing
//! until it gets one (with OX: until it overloads and faults); Vegas reads the queue from the
//! latency alone and settles just above the knee, where the workers are busy and little waits.
//! The halving on faults is AIMD's part: a fault is the clearest sign of overload.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Calls queueing in OX below which the limit grows.
const ALPHA: f64 = 2.0;
/// Calls queueing in OX above which the limit shrinks.
const BETA: f64 = 4.0;
/// Latency within this of the floor counts as no queueing.
const SLACK: Duration = Duration::from_millis(1);
/// Rounds after which the floor is measured afresh.
const FLOOR_ROUNDS: u32 = 100;

/// The adaptive limit, shared by every SOAP call of one OX client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    released: Notify,
}

#[derive(Debug)]
struct State {
    limit: usize,
    max: usize,
    in_flight: usize,
    floor: Option<Duration>,
    /// The shortest call since the floor was last measured afresh.
    next_floor: Option<Duration>,
    rounds_since_floor: u32,
    round: Round,
}

/// The calls finished since the limit last changed or was confirmed.
#[derive(Debug, Default)]
struct Round {
    calls: usize,
    total: Duration,
    most_in_flight: usize,
    fault: bool,
}

/// What the limiter shows (metrics, `queue status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSnapshot {
    /// Calls allowed at once now.
    pub limit: usize,
    /// The upper bound (`--apply-concurrency`).
    pub max: usize,
    /// Calls in flight now.
    pub in_flight: usize,
    /// The latency floor; `None` before the first call.
    pub floor: Option<Duration>,
}

/// The right to make one call; give it back with [`Permit::finish`] (dropping it gives it back
/// without a measurement, e.g. when the call was cancelled).
#[derive(Debug)]
pub struct Permit {
    limiter: Limiter,
}

impl Limiter {
    /// A limiter between 1 and `max` calls, starting at the lesser of `max` and 4.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    limit: max.min(4),
                    max,
                    in_flight: 0,
                    floor: None,
                    next_floor: None,
                    rounds_since_floor: 0,
                    round: Round::default(),
                }),
                released: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::locks::lock(&self.inner.state)
    }

    /// Waits until a call may start.
    pub async fn acquire(&self) -> Permit {
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            // Registered before checking, so a release in between is not missed.
            released.as_mut().enable();
            {
                let mut state = self.state();
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    let in_flight = state.in_flight;
                    let round = &mut state.round;
                    round.most_in_flight = round.most_in_flight.max(in_flight);
                    return Permit {
                        limiter: self.clone(),
                    };
                }
            }
            released.await;
        }
    }

    pub fn snapshot(&self) -> LimitSnapshot {
        let state = self.state();
        LimitSnapshot {
            limit: state.limit,
            max: state.max,
            in_flight: state.in_flight,
            floor: state.floor,
        }
    }

    /// The calls at this moment, as the status board shows them.
    pub fn calls(&self) -> crate::status::OxCalls {
        let now = self.snapshot();
        crate::status::OxCalls {
            limit: now.limit,
            max: now.max,
            in_flight: now.in_flight,
            latency_floor_us: now
                .floor
                .map(|f| u64::try_from(f.as_micros()).unwrap_or(u64::MAX)),
        }
    }

    fn release(&self, sample: Option<(Duration, bool)>) {
        {
            let mut state = self.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            if let Some((latency, transient)) = sample {
                state.record(latency, transient);
            }
        }
        // Wake every waiter: the limit may have grown by more than one.
        self.inner.released.notify_waiters();
    }
}

impl Permit {
    /// Gives the permit back with how long the call took and whether it failed transiently
    /// (connection refused or reset, timeout, HTTP 5xx, OX's "try again" faults).
    pub fn finish(self, latency: Duration, transient: bool) {
        let limiter = self.limiter.clone();
        std::mem::forget(self);
        limiter.release(Some((latency, transient)));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(None);
    }
}

impl State {
    fn record(&mut self, latency: Duration, transient: bool) {
        if transient {
            if !self.round.fault {
                self.limit = (self.limit / 2).max(1);
                self.round = Round {
                    fault: true,
                    ..Round::default()
                };
            }
            return;
        }
        self.floor = Some(self.floor.map_or(latency, |f| f.min(latency)));
        self.next_floor = Some(self.next_floor.map_or(latency, |f| f.min(latency)));
        self.round.calls += 1;
        self.round.total += latency;
        if self.round.calls >= self.limit {
            self.end_round();
        }
    }

    /// Adjusts the limit from the round's mean latency against the floor.
    fn end_round(&mut self) {
        let round = std::mem::take(&mut self.round);
        let (Some(floor), Ok(calls)) = (self.floor, u32::try_from(round.calls)) else {
            return;
        };
        let rtt = round.total / calls.max(1);
        let limit = self.limit as f64;
        let unqueued = (floor + SLACK).as_secs_f64() / rtt.as_secs_f64().max(f64::EPSILON);
        let queue = limit * (1.0 - unqueued.min(1.0));
        if queue > BETA {
            self.limit = (self.limit - 1).max(1);
        } else if queue < ALPHA && round.most_in_flight >= self.limit {
            self.limit = (self.limit + 1).min(self.max);
        }
        self.rounds_since_floor += 1;
        if self.rounds_since_floor >= FLOOR_ROUNDS {
            self.floor = self.next_floor.take();
            self.rounds_since_floor = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated OX with `workers` threads that take `service` per call: a call's latency
    /// with `in_flight` calls at once.
    fn latency(service: Duration, workers: usize, in_flight: usize) -> Duration {
        let waves = in_flight.div_ceil(workers).max(1);
        service * u32::try_from(waves).unwrap()
    }

    /// Runs `rounds` rounds at the current limit against the simulated OX; returns the limits.
    fn simulate(limiter: &Limiter, rounds: usize, workers: usize, service: Duration) -> Vec<usize> {
        let mut limits = Vec::new();
        for _ in 0..rounds {
            let limit = limiter.snapshot().limit;
            let permits: Vec<Permit> = (0..limit)
                .map(|_| {
                    let mut state = limiter.state();
                    state.in_flight += 1;
                    let in_flight = state.in_flight;
                    state.round.most_in_flight = state.round.most_in_flight.max(in_flight);
                    Permit {
                        limiter: limiter.clone(),
                    }
                })
                .collect();
            for permit in permits {
                permit.finish(latency(service, workers, limit), false);
            }
            limits.push(limiter.snapshot().limit);
        }
        limits
    }

    #[test]
    fn the_limit_grows_to_the_maximum_while_latency_stays_at_its_floor() {
        let limiter = Limiter::new(16);
        let limits = simulate(&limiter, 40, 64, Duration::from_millis(5));
        assert_eq!(*limits.last().unwrap(), 16, "{limits:?}");
    }

    #[test]
    fn the_limit_settles_near_the_workers_of_a_saturated_server() {
        let limiter = Limiter::new(64);
        let limits = simulate(&limiter, 200, 8, Duration::from_millis(20));
        let settled = &limits[100..];
        assert!(
            settled.iter().all(|l| (8..=14).contains(l)),
            "settles near 8 workers: {settled:?}"
        );
    }

    #[test]
    fn a_transient_fault_halves_the_limit_once_per_round_and_never_below_one() {
        let limiter = Limiter::new(16);
        simulate(&limiter, 40, 64, Duration::from_millis(5));
        assert_eq!(limiter.snapshot().limit, 16);
        let permits: Vec<Permit> = (0..3)
            .map(|_| Permit {
                limiter: limiter.clone(),
            })
            .collect();
        limiter.state().in_flight += 3;
        for permit in permits {
            permit.finish(Duration::from_secs(10), true);
        }
        assert_eq!(limiter.snapshot().limit, 8, "halved once for one burst");
        for _ in 0..10 {
            limiter.state().round.fault = false;
            limiter.state().in_flight += 1;
            Permit {
                limiter: limiter.clone(),
            }
            .finish(Duration::from_secs(10), true);
        }
        assert_eq!(limiter.snapshot().limit, 1);
        assert_eq!(limiter.snapshot().in_flight, 0);
    }

    #[tokio::test]
    async fn calls_beyond_the_limit_wait_for_a_permit() {
        let limiter = Limiter::new(1);
        let first = limiter.acquire().await;
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert_eq!(limiter.snapshot().in_flight, 1);
        first.finish(Duration::from_millis(1), false);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released")
            .unwrap();
        drop(second);
        assert_eq!(limiter.snapshot().in_flight, 0);
    }
}
