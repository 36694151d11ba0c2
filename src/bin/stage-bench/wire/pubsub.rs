//! W1 (fan-in, 4 publishers → 1 subscriber) and W3 (fan-out, 1 publisher → 8 subscribers):
//! pipelined publishers, verifying subscribers (WORKLOADS.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::payload::{self, now_ns};
use super::tally::Tally;
use super::{Event, Role, System};
use crate::report::{percentile, Line};

/// Bytes a publisher buffers before it writes (nats.go's default buffer size).
const PUBLISH_BUFFER: usize = 32 * 1024;

/// Once every publisher is done, this long without a delivery ends the wait.
const QUIET: Duration = Duration::from_secs(3);

/// One fan-in or fan-out workload.
pub struct Plan {
    pub workload: &'static str,
    pub subject: &'static str,
    pub publishers: u32,
    pub subscribers: u32,
    pub per_publisher: u64,
    pub timeout: Duration,
}

/// What one publisher saw: when the server confirmed its last publish, and (Redis) the
/// `PUBLISH` replies.
struct Published {
    done_ns: u64,
    replies: u64,
    receivers: i64,
}

/// Runs `plan` once on `system`; the RESULT fields (CPU fields are added by the caller).
pub async fn run(system: &System, plan: &Plan) -> Result<Line, String> {
    let give_up = tokio::time::Instant::now() + plan.timeout;
    let mut subs = Vec::new();
    for _ in 0..plan.subscribers {
        let role = Role {
            subscribe: Some(plan.subject),
            ..Role::default()
        };
        subs.push(system.connect(role).await?);
    }
    let mut pubs = Vec::new();
    for _ in 0..plan.publishers {
        let role = Role {
            publish: Some(plan.subject),
            ..Role::default()
        };
        pubs.push(system.connect(role).await?);
    }
    let (start, started) = watch::channel(false);
    let publishers_done = Arc::new(AtomicBool::new(false));
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .map(|conn| {
            let tally = Tally::new(plan.publishers, plan.per_publisher);
            tokio::spawn(subscribe(conn, tally, publishers_done.clone(), give_up))
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .zip(0u32..)
        .map(|(conn, stream)| {
            let mut started = started.clone();
            let count = plan.per_publisher;
            tokio::spawn(async move {
                let _ = started.wait_for(|go| *go).await;
                publish(conn, stream, count).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t0 = now_ns();
    let _ = start.send(true);

    let mut published = Vec::new();
    let mut failure = None;
    for t in pub_tasks {
        match tokio::time::timeout_at(give_up, t).await {
            Ok(Ok(Ok(p))) => published.push(p),
            Ok(Ok(Err(e))) => failure = failure.or(Some(e)),
            Ok(Err(e)) => failure = failure.or(Some(format!("publisher: {e}"))),
            Err(_) => failure = failure.or(Some("publisher timed out".into())),
        }
    }
    publishers_done.store(true, Ordering::Relaxed);
    let mut tallies = Vec::new();
    for t in sub_tasks {
        match t.await {
            Ok(Ok(tally)) => tallies.push(tally),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(format!("subscriber: {e}"))),
        }
    }
    let expected = plan.publishers as u64 * plan.per_publisher * plan.subscribers as u64;
    let unique: u64 = tallies.iter().map(|t| t.unique).sum();
    let duplicates: u64 = tallies.iter().map(|t| t.duplicates).sum();
    let lost = expected - unique.min(expected);
    if let Some(e) = failure.or_else(|| {
        (lost > 0 || duplicates > 0).then(|| format!("{lost} lost, {duplicates} duplicated"))
    }) {
        return Err(format!(
            "workload={} peer={} LOST={lost} error=\"{e}\"",
            plan.workload,
            system.name()
        ));
    }

    let last = tallies.iter().map(|t| t.last_ns).max().unwrap_or(t0);
    let secs = |ns: u64| ns.saturating_sub(t0).max(1) as f64 / 1e9;
    let mut latencies: Vec<u64> = tallies
        .iter_mut()
        .flat_map(|t| std::mem::take(&mut t.latencies))
        .collect();
    latencies.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let pub_done = published.iter().map(|p| p.done_ns).max().unwrap_or(t0);
    let publishes = plan.publishers as u64 * plan.per_publisher;
    let mut line = Line::result(plan.workload, system.name())
        .num("msgs_per_s", expected as f64 / secs(last))
        .num("p50_us", us(percentile(&latencies, 0.5)))
        .num("p99_us", us(percentile(&latencies, 0.99)))
        .num("p999_us", us(percentile(&latencies, 0.999)))
        .num("max_us", us(latencies.last().copied().unwrap_or(0)))
        .num("pub_msgs_per_s", publishes as f64 / secs(pub_done))
        .num(
            "out_of_order",
            tallies.iter().map(|t| t.out_of_order).sum::<u64>() as f64,
        )
        .num("deliveries", expected as f64);
    if plan.subscribers > 1 {
        let mut rates: Vec<f64> = tallies
            .iter()
            .map(|t| t.expected() as f64 / secs(t.last_ns))
            .collect();
        rates.sort_by(f64::total_cmp);
        line = line
            .num("per_sub_msgs_per_s_min", rates[0])
            .num("per_sub_msgs_per_s_median", rates[rates.len() / 2])
            .num("per_sub_msgs_per_s_max", rates[rates.len() - 1]);
    }
    if let System::Redis(_) = system {
        let replies: u64 = published.iter().map(|p| p.replies).sum();
        let receivers: i64 = published.iter().map(|p| p.receivers).sum();
        if replies != publishes || receivers != expected as i64 {
            return Err(format!(
                "workload={} peer=redis LOST=0 error=\"{replies} PUBLISH replies for {publishes} publishes, {receivers} receivers for {expected} deliveries\"",
                plan.workload
            ));
        }
        line = line
            .num("publish_replies", replies as f64)
            .num("publish_receivers_sum", receivers as f64);
    }
    Ok(line.num("lost", 0.0).num("duplicates", 0.0))
}

/// Publishes `count` payloads of `stream` back to back, writing every 32 KiB, then pings and
/// waits for the answer; a reader task counts what the server sends meanwhile.
async fn publish(conn: super::Conn, stream: u32, count: u64) -> Result<Published, String> {
    let codec = conn.codec.clone();
    let (mut rd, mut wr) = conn.split();
    let reader = tokio::spawn(async move {
        let mut p = Published {
            done_ns: 0,
            replies: 0,
            receivers: 0,
        };
        loop {
            match rd.next_event().await? {
                Some(Event::Published(n)) => {
                    p.replies += 1;
                    p.receivers += n;
                }
                Some(Event::Pong) => {
                    p.done_ns = now_ns();
                    return Ok(p);
                }
                Some(_) => {}
                None => return Err("the server closed a publisher".to_owned()),
            }
        }
    });
    let mut buf = Vec::with_capacity(PUBLISH_BUFFER + 1024);
    for seq in 0..count {
        codec.publish(&mut buf, &payload::now(seq, stream));
        if buf.len() >= PUBLISH_BUFFER {
            wr.write_all(&buf)
                .await
                .map_err(|e| format!("publish: {e}"))?;
            buf.clear();
        }
    }
    codec.ping(&mut buf);
    wr.write_all(&buf)
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let result = reader.await.map_err(|e| format!("publisher reader: {e}"))?;
    drop(wr);
    result
}

/// Receives and verifies until every expected message arrived, the publishers are done and
/// the connection was quiet for [`QUIET`], or the workload's time is up.
async fn subscribe(
    mut conn: super::Conn,
    mut tally: Tally,
    publishers_done: Arc<AtomicBool>,
    give_up: tokio::time::Instant,
) -> Result<Tally, String> {
    let codec = conn.codec.clone();
    let mut out = Vec::new();
    let mut last_heard = tokio::time::Instant::now();
    while !tally.complete() {
        let now = tokio::time::Instant::now();
        if now >= give_up
            || (publishers_done.load(Ordering::Relaxed) && now.duration_since(last_heard) >= QUIET)
        {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), conn.fill()).await {
            Err(_) => continue,
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err("the server closed a subscriber".into()),
            Ok(Err(e)) => return Err(e),
        }
        let recv_ns = now_ns();
        last_heard = tokio::time::Instant::now();
        while let Some((event, bytes)) = conn.parsed()? {
            match event {
                Event::Message { payload, .. } => {
                    tally.record(&bytes[payload], recv_ns)?;
                }
                Event::Ping(key) => codec.pong(&mut out, key),
                _ => {}
            }
        }
        if !out.is_empty() {
            conn.write(&out).await?;
            out.clear();
        }
    }
    Ok(tally)
}
