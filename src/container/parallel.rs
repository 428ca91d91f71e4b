//! An ordered parallel map with bounded memory: a producer makes jobs, N
//! workers turn them into results, and the consumer sees the results in the
//! producer's order. At most `window` jobs are in flight (made and not yet
//! consumed), so memory is bounded by `window` times a job's size.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use crate::Result;

/// The number of worker threads to use by default: the number of cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Run `produce` (which calls its argument once per job, in order, and
/// stops when that returns false), `work` on `threads` threads, and
/// `consume` on the results in order. The first error (from any side)
/// stops everything and is returned.
pub fn ordered<J, T, P, W, C>(threads: usize, produce: P, work: W, mut consume: C) -> Result<()>
where
    J: Send,
    T: Send,
    P: FnOnce(&mut dyn FnMut(J) -> bool) -> Result<()> + Send,
    W: Fn(J) -> Result<T> + Sync,
    C: FnMut(T) -> Result<()>,
{
    let threads = threads.max(1);
    let window = threads * 2 + 2;
    std::thread::scope(|s| {
        let (job_tx, job_rx) = sync_channel::<(u64, J)>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = channel::<(u64, Result<T>)>();
        // Tickets bound the jobs in flight: the producer takes one per job,
        // the consumer gives one back per result consumed.
        let (ticket_tx, ticket_rx) = sync_channel::<()>(window);
        let producer = s.spawn(move || {
            let mut n = 0u64;
            let mut send = |j: J| -> bool {
                if ticket_tx.send(()).is_err() {
                    return false;
                }
                let ok = job_tx.send((n, j)).is_ok();
                n += 1;
                ok
            };
            produce(&mut send)
        });
        let work = &work;
        for _ in 0..threads {
            let rx = Arc::clone(&job_rx);
            let tx = res_tx.clone();
            s.spawn(move || loop {
                let job = rx.lock().unwrap().recv();
                let Ok((n, j)) = job else { return };
                if tx.send((n, work(j))).is_err() {
                    return;
                }
            });
        }
        drop(res_tx);
        let r = consume_in_order(&res_rx, &ticket_rx, &mut consume);
        // Unblock and stop the other side before joining.
        drop(ticket_rx);
        drop(res_rx);
        drop(job_rx);
        let p = producer.join().unwrap_or_else(|_| {
            Err(crate::Error::Invalid(
                "internal error: a compression thread panicked".into(),
            ))
        });
        r.and(p)
    })
}

fn consume_in_order<T, C: FnMut(T) -> Result<()>>(
    res_rx: &Receiver<(u64, Result<T>)>,
    tickets: &Receiver<()>,
    consume: &mut C,
) -> Result<()> {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Result<T>> = BTreeMap::new();
    for (n, r) in res_rx.iter() {
        pending.insert(n, r);
        while let Some(r) = pending.remove(&next) {
            consume(r?)?;
            next += 1;
            let _ = tickets.try_recv();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_stops_on_error() {
        let mut out = Vec::new();
        ordered(
            3,
            |send| {
                for i in 0..100u32 {
                    if !send(i) {
                        break;
                    }
                }
                Ok(())
            },
            |i| Ok(i * 2),
            |v| {
                out.push(v);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        let r = ordered(
            2,
            |send| {
                for i in 0..1000u32 {
                    if !send(i) {
                        break;
                    }
                }
                Ok(())
            },
            |i| {
                if i == 7 {
                    Err(crate::Error::Invalid("seven".into()))
                } else {
                    Ok(i)
                }
            },
            |_| Ok(()),
        );
        assert!(r.is_err());
    }
}
