//! The latency floor of a replicated write on this machine: how long one
//! small durable append takes, and one loopback round trip.
//!
//! ```sh
//! cargo run --release -p host-native --example floor -- [DIR] [--json]
//! ```
//!
//! * fdatasync: append 256 bytes to a file in DIR (default: the current
//!   directory; use the disk the journals are on) and `fdatasync` it, 2,000
//!   times, as the journal does for a batch of one record; and the same
//!   writes into a file already filled with zeros (no size change to sync).
//! * the same overwriting syncs from three threads at once, each into its own
//!   file, started together (a barrier per round), as the three nodes of a
//!   local cluster sync on one disk: the disk serves them together, and each
//!   takes longer than one alone.
//! * round trip: a 64-byte message to a thread on 127.0.0.1 and back, 20,000
//!   times (TCP, no Nagle delay).
//!
//! A write acknowledged by a 3-node cluster needs at least the client's round
//! trip to the leader, the leader's round trip to a follower and one sync
//! (the leader's and the follower's overlap): floor = fdatasync into
//! preallocated space (the journal preallocates) + 2 RTT. When the three
//! nodes share one disk their syncs overlap too, so the floor of such a
//! cluster is the concurrent sync + 2 RTT (`same_disk_floor_us`).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn summary(mut ns: Vec<u64>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0;
    let p50 = ns[ns.len() / 2] as f64 / 1000.0;
    let p99 = ns[ns.len() * 99 / 100] as f64 / 1000.0;
    (mean, p50, p99)
}

/// Times `rounds` writes of 256 bytes, each followed by `fdatasync`, into a
/// new file at `path` (deleted after), the first `warm_up` left out;
/// `before_each` runs before each round starts its clock. `prealloc`:
/// overwrite a file already written with zeros (its size does not change, so
/// the sync has no metadata to write) instead of appending.
fn timed_syncs(
    path: &std::path::Path,
    prealloc: bool,
    rounds: usize,
    warm_up: usize,
    mut before_each: impl FnMut(),
) -> std::io::Result<Vec<u64>> {
    use std::os::unix::fs::FileExt;
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    let block = [0x5au8; 256];
    if prealloc {
        f.write_all(&vec![0u8; 256 * (rounds + 100)])?;
        f.sync_all()?;
    }
    let mut out = Vec::with_capacity(rounds - warm_up);
    for i in 0..rounds {
        before_each();
        let t = Instant::now();
        f.write_all_at(&block, i as u64 * 256)?;
        f.sync_data()?;
        if i >= warm_up {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(f);
    std::fs::remove_file(path)?;
    Ok(out)
}

/// 2,000 timed syncs in DIR (after 100 to warm up), as the journal does for a
/// batch of one record.
fn fdatasync(dir: &std::path::Path, prealloc: bool) -> std::io::Result<Vec<u64>> {
    timed_syncs(&dir.join(format!("floor-{}.tmp", std::process::id())), prealloc, 2100, 100, || {})
}

/// Overwriting syncs from `n` threads at once (each its own file, rounds
/// started together): every thread's times, all in one list.
fn fdatasync_concurrent(dir: &std::path::Path, n: usize) -> std::io::Result<Vec<u64>> {
    use std::sync::{Arc, Barrier};
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|k| {
            let path = dir.join(format!("floor-{}-{k}.tmp", std::process::id()));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                timed_syncs(&path, true, 1050, 50, || {
                    barrier.wait();
                })
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().map_err(|_| std::io::Error::other("a sync thread panicked"))??);
    }
    Ok(all)
}

fn round_trip() -> std::io::Result<Vec<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut out = Vec::with_capacity(20_000);
    for i in 0..21_000 {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        if i >= 1000 {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(s);
    let _ = echo.join();
    Ok(out)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let dir = args.iter().find(|a| !a.starts_with("--")).map(std::path::PathBuf::from).unwrap_or_else(|| ".".into());
    let (s_mean, s_p50, s_p99) = summary(fdatasync(&dir, false)?);
    let (o_mean, o_p50, o_p99) = summary(fdatasync(&dir, true)?);
    let (c_mean, c_p50, c_p99) = summary(fdatasync_concurrent(&dir, 3)?);
    let (r_mean, r_p50, r_p99) = summary(round_trip()?);
    let floor = o_mean + 2.0 * r_mean;
    let same_disk = c_mean + 2.0 * r_mean;
    if json {
        println!(
            "{{\"fdatasync_us\":{{\"mean\":{s_mean:.1},\"p50\":{s_p50:.1},\"p99\":{s_p99:.1}}},\
             \"fdatasync_overwrite_us\":{{\"mean\":{o_mean:.1},\"p50\":{o_p50:.1},\"p99\":{o_p99:.1}}},\
             \"fdatasync_overwrite_3_us\":{{\"mean\":{c_mean:.1},\"p50\":{c_p50:.1},\"p99\":{c_p99:.1}}},\
             \"rtt_us\":{{\"mean\":{r_mean:.1},\"p50\":{r_p50:.1},\"p99\":{r_p99:.1}}},\
             \"floor_us\":{floor:.1},\"same_disk_floor_us\":{same_disk:.1}}}"
        );
    } else {
        println!(
            "fdatasync of 256 B appended in {}: mean {s_mean:.1} us, p50 {s_p50:.1}, p99 {s_p99:.1}",
            dir.display()
        );
        println!("  the same into preallocated space: mean {o_mean:.1} us, p50 {o_p50:.1}, p99 {o_p99:.1}");
        println!("  three of those at once (three files): mean {c_mean:.1} us, p50 {c_p50:.1}, p99 {c_p99:.1}");
        println!("loopback TCP round trip (64 B): mean {r_mean:.1} us, p50 {r_p50:.1}, p99 {r_p99:.1}");
        println!("floor of a replicated write = fdatasync (preallocated) + 2 RTT = {floor:.1} us");
        println!("  with the three nodes on this one disk = three syncs at once + 2 RTT = {same_disk:.1} us");
    }
    Ok(())
}
