//! A linearizability checker for one register (one key of a KV store): the WGL search
//! (Wing and Gong; Lowe's "Testing for linearizability", 2017) with memoization of the
//! configurations already explored, as porcupine does it, and a bound on its steps.
//!
//! Written here rather than taken from crates.io: `todc-utils`' WGL checker (two
//! releases, 2023) answers a bare bool with no bound on its search, `lincheck` checks
//! threads of one process on loom, and `stateright`'s `LinearizabilityTester` gave no
//! verdict in a minute on a 200-operation history (issue 21). This one is about 200
//! lines, with its own tests below.
//!
//! - An operation is an interval `[invoke_ns, complete_ns]` and an outcome: `Put(v)`
//!   acknowledged or of unknown outcome, `Get` returning a value or nothing.
//! - A PUT whose outcome is unknown (a timeout, a connection error, any answer but 200)
//!   stays pending forever (`complete_ns: None`): it may take effect at any point after
//!   its invocation, or never (taking effect at the very end is the same as never, since
//!   nothing observes it after). A GET without an answer constrains nothing: the caller
//!   leaves it out. A pending PUT whose value no GET returned is dropped before the search
//!   (exactly equivalent, see `without_unseen_pending_puts`).
//! - The process that invoked an operation does not matter to the check (only intervals
//!   do); a client that gave up on an operation goes on under a new id so that the
//!   history stays well formed (one pending operation per id), which is the caller's care.
//! - Values must be unique per key (each PUT writes a value no other PUT writes): the
//!   check is exact then.
//!
//! The search: walk the events in time order; at a call, try to linearize its operation
//! now (apply it to the register; a GET must return the register's value); if that gives
//! a configuration (set of linearized operations, register value) not seen before, take
//! it and restart from the first event left; at a return whose operation is not yet
//! linearized, undo the last choice. An empty event list means linearizable; undoing with
//! nothing to undo means not. `max_steps` bounds the work: past it the verdict is
//! `Undecided`, which a test counts as a failure.
#![allow(dead_code)]

use std::collections::HashSet;

/// What an operation did, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// Wrote this value (unique per key).
    Put(u64),
    /// Read: the value, or `None` for "no such key".
    Get(Option<u64>),
}

/// One operation on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// The client (thread) id, for the report only.
    pub client: u64,
    /// When it was sent, ns since the history's start.
    pub invoke_ns: u64,
    /// When its answer came, ns; `None`: never known (pending forever).
    pub complete_ns: Option<u64>,
    /// What it did.
    pub call: Call,
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists. `steps`: events visited.
    Linearizable { steps: u64 },
    /// None exists. `deepest`: the most operations any attempt linearized.
    NotLinearizable { steps: u64, deepest: usize },
    /// The search passed `max_steps` without a verdict.
    Undecided { steps: u64 },
}

/// The register's sequential specification: `(legal, next state)`.
fn step(state: Option<u64>, call: Call) -> (bool, Option<u64>) {
    match call {
        Call::Put(v) => (true, Some(v)),
        Call::Get(seen) => (seen == state, state),
    }
}

/// One event of the history: the call or the return of operation `op`.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// The index of the other event of the same operation.
    other: usize,
}

/// A doubly linked list of events over arrays; index 0 is the head sentinel.
struct Events {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

/// End of the list.
const NIL: usize = usize::MAX;

impl Events {
    /// Events of `ops` in time order: calls before returns at the same instant (the more
    /// permissive reading), pending returns after everything.
    fn new(ops: &[Op]) -> Events {
        // (time, 0 for a call / 1 for a return, op)
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke_ns, 0, i));
            order.push((op.complete_ns.unwrap_or(u64::MAX), 1, i));
        }
        order.sort_unstable();
        let mut events = vec![Event {
            op: NIL,
            is_call: false,
            other: NIL,
        }];
        let mut call_at = vec![NIL; ops.len()];
        for &(_, kind, op) in &order {
            let at = events.len();
            if kind == 0 {
                call_at[op] = at;
                events.push(Event {
                    op,
                    is_call: true,
                    other: NIL,
                });
            } else {
                events[call_at[op]].other = at;
                events.push(Event {
                    op,
                    is_call: false,
                    other: call_at[op],
                });
            }
        }
        let n = events.len();
        let next = (0..n)
            .map(|i| if i + 1 < n { i + 1 } else { NIL })
            .collect();
        let prev = (0..n).map(|i| i.wrapping_sub(1)).collect();
        Events { events, next, prev }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Puts `i` back where it was: the inverse of the last `unlink` not yet undone.
    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if n != NIL {
            self.prev[n] = i;
        }
    }

    /// Removes the call at `i` and its return.
    fn lift(&mut self, i: usize) {
        self.unlink(i);
        self.unlink(self.events[i].other);
    }

    /// Undoes `lift(i)`.
    fn unlift(&mut self, i: usize) {
        self.relink(self.events[i].other);
        self.relink(i);
    }
}

/// `ops` without the pending PUTs whose value no GET returned. Exact, not a guess: in a
/// linearization with such a PUT, whatever follows it until the next PUT is a GET of its
/// value (there is none), so dropping it leaves a linearization; and a linearization
/// without it stays one with it placed last. Without this a few dozen unknown PUTs
/// before a read of "absent" make the search visit every subset of them.
fn without_unseen_pending_puts(ops: &[Op]) -> Vec<Op> {
    let seen: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match o.call {
            Call::Get(Some(v)) => Some(v),
            _ => None,
        })
        .collect();
    ops.iter()
        .filter(|o| match o.call {
            Call::Put(v) => o.complete_ns.is_some() || seen.contains(&v),
            Call::Get(_) => true,
        })
        .copied()
        .collect()
}

/// Decides whether `ops` (one key's history, from the register's initial state "absent")
/// is linearizable, visiting at most `max_steps` events.
pub fn check(ops: &[Op], max_steps: u64) -> Verdict {
    let ops = &without_unseen_pending_puts(ops)[..];
    let mut list = Events::new(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // (call event taken, register value before it)
    let mut taken: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut deepest = 0;
    let mut steps = 0u64;
    let mut at = list.next[0];
    while at != NIL {
        steps += 1;
        if steps > max_steps {
            return Verdict::Undecided { steps };
        }
        let event = list.events[at];
        if event.is_call {
            let (legal, after) = step(state, ops[event.op].call);
            if legal {
                let (word, bit) = (event.op / 64, 1u64 << (event.op % 64));
                linearized[word] |= bit;
                if seen.insert((linearized.clone(), after)) {
                    taken.push((at, state));
                    deepest = deepest.max(taken.len());
                    state = after;
                    list.lift(at);
                    at = list.next[0];
                    continue;
                }
                linearized[word] &= !bit;
            }
            at = list.next[at];
        } else {
            // A return whose operation is not linearized yet: undo the last choice.
            let Some((call_at, before)) = taken.pop() else {
                return Verdict::NotLinearizable { steps, deepest };
            };
            let op = list.events[call_at].op;
            linearized[op / 64] &= !(1u64 << (op % 64));
            state = before;
            list.unlift(call_at);
            at = list.next[call_at];
        }
    }
    Verdict::Linearizable { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, invoke_ns: u64, complete_ns: Option<u64>, call: Call) -> Op {
        Op {
            client,
            invoke_ns,
            complete_ns,
            call,
        }
    }

    const STEPS: u64 = 100_000;

    fn linearizable(v: &Verdict) -> bool {
        matches!(v, Verdict::Linearizable { .. })
    }

    #[test]
    fn accepts_concurrent_writes_read_in_either_order() {
        // put(1) and put(2) overlap; a read inside sees 1, a read after both sees 2;
        // then 2 again: linearizable (1 before 2).
        let h = [
            op(1, 0, Some(10), Call::Put(1)),
            op(2, 5, Some(40), Call::Put(2)),
            op(3, 12, Some(20), Call::Get(Some(1))),
            op(3, 45, Some(50), Call::Get(Some(2))),
            op(1, 46, Some(49), Call::Get(Some(2))),
        ];
        assert!(linearizable(&check(&h, STEPS)), "{:?}", check(&h, STEPS));
        // The other order is fine too when the reads say so.
        let h = [
            op(1, 0, Some(30), Call::Put(1)),
            op(2, 5, Some(30), Call::Put(2)),
            op(3, 40, Some(50), Call::Get(Some(1))),
        ];
        assert!(linearizable(&check(&h, STEPS)));
        // Absent before any write.
        let h = [
            op(1, 0, Some(5), Call::Get(None)),
            op(2, 3, Some(30), Call::Put(7)),
        ];
        assert!(linearizable(&check(&h, STEPS)));
    }

    #[test]
    fn rejects_a_stale_read() {
        // put(1) acknowledged, then put(2) acknowledged, then a read of 1: stale.
        let h = [
            op(1, 0, Some(10), Call::Put(1)),
            op(1, 20, Some(30), Call::Put(2)),
            op(2, 40, Some(50), Call::Get(Some(1))),
        ];
        assert!(matches!(check(&h, STEPS), Verdict::NotLinearizable { .. }));
        // A read of nothing after an acknowledged write: a lost write.
        let h = [
            op(1, 0, Some(10), Call::Put(1)),
            op(2, 20, Some(30), Call::Get(None)),
        ];
        assert!(matches!(check(&h, STEPS), Verdict::NotLinearizable { .. }));
        // Two reads that see the writes in opposite orders.
        let h = [
            op(1, 0, Some(100), Call::Put(1)),
            op(2, 0, Some(100), Call::Put(2)),
            op(3, 10, Some(20), Call::Get(Some(1))),
            op(3, 30, Some(40), Call::Get(Some(2))),
            op(4, 50, Some(60), Call::Get(Some(1))),
        ];
        assert!(matches!(check(&h, STEPS), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn a_pending_write_may_take_effect_late_or_never_but_only_after_its_call() {
        // put(9) never answered: a read may see it long after...
        let h = [
            op(1, 0, Some(10), Call::Put(1)),
            op(2, 20, None, Call::Put(9)),
            op(3, 100, Some(110), Call::Get(Some(1))),
            op(3, 200, Some(210), Call::Get(Some(9))),
        ];
        assert!(linearizable(&check(&h, STEPS)));
        // ...or never.
        let h = [
            op(1, 0, Some(10), Call::Put(1)),
            op(2, 20, None, Call::Put(9)),
            op(3, 200, Some(210), Call::Get(Some(1))),
        ];
        assert!(linearizable(&check(&h, STEPS)));
        // But not before it was sent.
        let h = [
            op(3, 0, Some(10), Call::Get(Some(9))),
            op(2, 20, None, Call::Put(9)),
        ];
        assert!(!linearizable(&check(&h, STEPS)));
        // And once seen, it cannot be unseen for an older value.
        let h = [
            op(1, 0, Some(10), Call::Put(1)),
            op(2, 20, None, Call::Put(9)),
            op(3, 100, Some(110), Call::Get(Some(9))),
            op(3, 200, Some(210), Call::Get(Some(1))),
        ];
        assert!(!linearizable(&check(&h, STEPS)));
    }

    #[test]
    fn unseen_pending_writes_cost_nothing() {
        // Forty writes never answered and never read, then a read of "absent": every one
        // of them may have failed. Without dropping them the search meets 2^40 subsets.
        let mut h: Vec<Op> = (0..40).map(|i| op(i, i, None, Call::Put(i + 1))).collect();
        h.push(op(99, 1_000, Some(1_010), Call::Get(None)));
        assert!(linearizable(&check(&h, 1_000)), "{:?}", check(&h, 1_000));
    }

    #[test]
    fn past_its_step_bound_the_search_is_undecided() {
        // Eight writes never answered, each read once by overlapping reads, and a read
        // of a value nobody wrote: no linearization, and proving it visits many orders.
        let mut h: Vec<Op> = (0..8).map(|i| op(i, i, None, Call::Put(i + 1))).collect();
        for i in 0..8 {
            h.push(op(100 + i, 1_000 + i, Some(2_000), Call::Get(Some(i + 1))));
        }
        h.push(op(99, 1_000, Some(2_000), Call::Get(Some(12_345))));
        assert!(matches!(check(&h, 1_000), Verdict::Undecided { .. }));
        assert!(matches!(
            check(&h, 100_000_000),
            Verdict::NotLinearizable { .. }
        ));
    }
}
