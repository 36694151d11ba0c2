//! W2 request-reply: a requester and a responder, strictly sequential (1 in flight) or with a
//! window of requests in flight; round-trip times from the payload's send stamp (WORKLOADS.md).

use std::time::Duration;

use super::payload::{self, now_ns};
use super::{Conn, Event, Role, System};
use crate::report::{percentile, Line};

const REQUEST: &str = "peerbench.w2.req";
const REPLY: &str = "peerbench.w2.rep";

/// A round trip without a reply for this long fails the workload.
const REPLY_WAIT: Duration = Duration::from_secs(5);

pub struct Plan {
    pub warmup: u64,
    pub measured: u64,
    pub in_flight: u64,
}

/// Runs `plan` once on `system`; the RESULT fields (CPU fields are added by the caller).
pub async fn run(system: &System, plan: &Plan) -> Result<Line, String> {
    let responder = system
        .connect(Role {
            subscribe: Some(REQUEST),
            publish: None,
            reply: Some(REPLY),
        })
        .await?;
    let requester = system
        .connect(Role {
            subscribe: Some(REPLY),
            publish: Some(REQUEST),
            reply: Some(REPLY),
        })
        .await?;
    let answering = tokio::spawn(respond(responder));
    let result = request(requester, plan).await;
    answering.abort();
    let (rtts, wall_ns) = result.map_err(|e| {
        format!(
            "workload=w2_reqrep peer={} LOST=1 error=\"{e}\"",
            system.name()
        )
    })?;
    let us = |ns: u64| ns as f64 / 1000.0;
    let mean = rtts.iter().sum::<u64>() as f64 / rtts.len().max(1) as f64;
    Ok(Line::result("w2_reqrep", system.name())
        .num(
            "msgs_per_s",
            plan.measured as f64 / (wall_ns.max(1) as f64 / 1e9),
        )
        .num("p50_us", us(percentile(&rtts, 0.5)))
        .num("p99_us", us(percentile(&rtts, 0.99)))
        .num("p999_us", us(percentile(&rtts, 0.999)))
        .num("max_us", us(rtts.last().copied().unwrap_or(0)))
        .num("mean_us", mean / 1000.0)
        .num("in_flight", plan.in_flight as f64)
        // Requests and replies, warm-up included: what the server forwarded.
        .num("deliveries", 2.0 * (plan.warmup + plan.measured) as f64)
        .num("lost", 0.0))
}

/// Answers every request with its own payload, flushing once per read.
async fn respond(mut conn: Conn) -> Result<(), String> {
    let codec = conn.codec.clone();
    let mut out = Vec::new();
    loop {
        if !conn.fill().await? {
            return Ok(());
        }
        while let Some((event, bytes)) = conn.parsed()? {
            match event {
                Event::Message { payload, reply } => {
                    codec.answer(&mut out, &bytes[reply], &bytes[payload])
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
}

/// Sends the warm-up and measured requests, keeping `in_flight` outstanding; returns the
/// measured round-trip times (sorted) and the measured wall time.
async fn request(mut conn: Conn, plan: &Plan) -> Result<(Vec<u64>, u64), String> {
    let codec = conn.codec.clone();
    let total = plan.warmup + plan.measured;
    // Each request's send stamp, and whether it was answered.
    let mut sent_at = Vec::with_capacity(total as usize);
    let mut answered = vec![false; total as usize];
    let mut rtts = Vec::with_capacity(plan.measured as usize);
    let mut out = Vec::new();
    let (mut sent, mut done) = (0u64, 0u64);
    let mut measure_from = 0;
    let mut publish_replies = 0u64;
    while done < total {
        // Top the window up; the measured clock starts with the first measured request.
        while sent < total && sent - done < plan.in_flight {
            if sent == plan.warmup {
                measure_from = now_ns();
            }
            let stamp = payload::Stamp {
                seq: sent,
                stream: 0,
                t_send: now_ns(),
            };
            sent_at.push(stamp.t_send);
            codec.publish(&mut out, &payload::make(stamp));
            sent += 1;
        }
        if !out.is_empty() {
            conn.write(&out).await?;
            out.clear();
        }
        match tokio::time::timeout(REPLY_WAIT, conn.fill()).await {
            Err(_) => {
                return Err(format!(
                    "no reply within {REPLY_WAIT:?} (round trip {done})"
                ))
            }
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err("the server closed the requester".into()),
            Ok(Err(e)) => return Err(e),
        }
        let recv_ns = now_ns();
        while let Some((event, bytes)) = conn.parsed()? {
            match event {
                Event::Message { payload, .. } => {
                    let s = payload::check(&bytes[payload]).map_err(str::to_owned)?;
                    let ok = s.stream == 0
                        && s.seq < sent
                        && !answered[s.seq as usize]
                        && sent_at[s.seq as usize] == s.t_send;
                    if !ok {
                        return Err(format!(
                            "unexpected reply seq {} stream {}",
                            s.seq, s.stream
                        ));
                    }
                    answered[s.seq as usize] = true;
                    done += 1;
                    if s.seq >= plan.warmup {
                        rtts.push(recv_ns.saturating_sub(s.t_send));
                    }
                }
                Event::Ping(key) => codec.pong(&mut out, key),
                // Redis answers each PUBLISH with its receiver count: the responder alone.
                Event::Published(1) => publish_replies += 1,
                Event::Published(n) => return Err(format!("a request reached {n} receivers")),
                _ => {}
            }
        }
    }
    let wall = now_ns().saturating_sub(measure_from);
    if matches!(codec, super::Codec::Redis(_)) && publish_replies != total {
        return Err(format!(
            "{publish_replies} PUBLISH replies for {total} requests"
        ));
    }
    rtts.sort_unstable();
    Ok((rtts, wall))
}
