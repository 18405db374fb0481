//! A fixed amount of closed-loop work, for instruction counts that do not
//! depend on machine load: `perf stat -e instructions:u target/release/examples/closed_loop 1024 200000`.

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let (mut cl, sessions) = benches::closed_loop_cluster(3, clients);
    let mut seqs = vec![0u64; clients];
    let t = benches::closed_loop_run(&mut cl, &sessions, &mut seqs, total);
    println!("{clients} clients: {total} writes in {t:.2?} = {:.0}/s", total as f64 / t.as_secs_f64());
}
