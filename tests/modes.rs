//! The router's forwarding modes, each over at least 1,000 messages to 3 instances of one
//! stage: round-robin gives exact thirds; master always reaches the lowest id, and the next one
//! once that process is killed; hash sends the same key to the same instance every time, and
//! removing an instance moves only the keys it owned; broadcast delivers every message to every
//! instance; random reaches every instance and gives none of them all.
//!
//! Each test has its own router and nodes, so the tests run in parallel. Three receiver nodes
//! host stage `svc` as instances 1, 2 and 3 and answer every message with their instance
//! (`=ret`); a sender node (stage `drv`) sends a batch once linked and prints one `ANS seq key
//! instance` line per answer, which the test counts.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{Proc, Scratch, WAIT};

/// Bound for one batch of answers to arrive (a batch takes well under a second here).
const BATCH: Duration = Duration::from_secs(20);
/// How long to keep watching after a batch is complete, to catch duplicate deliveries.
const SETTLE: Duration = Duration::from_millis(300);

/// Every instance answers with the message's sequence number and key, and its own instance.
const RECEIVER: &str = r#"
stage.waitfor("m", function(seq, key)
  return seq, key, stage.id()
end)
"#;

/// A sender script: `n` messages, answers printed as `ANS seq key instance`. With `keys > 0`
/// message `seq` carries hash key `(seq - 1) % keys + 1` (so keys 1..=keys repeat in order).
fn sender(n: u32, keys: u32) -> String {
    format!(
        r#"
local N, KEYS = {n}, {keys}
stage.waitfor("ans", function(seq, key, inst)
  print(string.format("ANS %d %d %d", seq, key, inst))
end)
for seq = 1, N do
  if KEYS > 0 then
    local key = (seq - 1) % KEYS + 1
    stage.signal({{ "svc:m=ans", key = key }}, seq, key)
  else
    stage.signal("svc:m=ans", seq, 0)
  end
end
print("SENT", N)
"#
    )
}

/// One answer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    seq: u32,
    key: u32,
    instance: u32,
}

fn parse(line: &str) -> Answer {
    let f: Vec<u32> = line
        .strip_prefix("ANS ")
        .unwrap_or_else(|| panic!("not an answer line: {line:?}"))
        .split(' ')
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("bad answer line {line:?}: {e}"))
        })
        .collect();
    assert_eq!(f.len(), 3, "bad answer line {line:?}");
    Answer {
        seq: f[0],
        key: f[1],
        instance: f[2],
    }
}

/// A router with `svc` in `mode`, and receivers `svc:1..=3`, all registered.
struct Cluster {
    router: Proc,
    addr: String,
    /// Receiver node of instance `i` at index `i - 1`.
    receivers: Vec<Proc>,
    senders: Vec<Proc>,
    // Last: removed after every process is gone.
    dir: Scratch,
}

impl Cluster {
    fn start(tag: &str, mode: &str) -> Cluster {
        let dir = Scratch::new(tag);
        dir.write("svc.lua", RECEIVER);
        let (router, addr) = Proc::router("router", &["--mode", &format!("svc={mode}")], &dir.dir);
        let receivers = (1..=3)
            .map(|i| {
                let id = i.to_string();
                Proc::node(
                    &format!("svc{i}"),
                    &["--router", &addr, "--stage", "svc=svc.lua", "--id", &id],
                    &dir.dir,
                )
            })
            .collect();
        // Registrations come in any order; wait for each, not just the last started.
        for i in 1..=3 {
            router.wait_err(&format!("registered svc:{i} "), WAIT);
        }
        Cluster {
            router,
            addr,
            receivers,
            senders: Vec::new(),
            dir,
        }
    }

    /// Starts a sender node `drv:id` sending `n` messages (see [`sender`]); returns its index.
    fn send(&mut self, id: u32, n: u32, keys: u32) -> usize {
        let script = format!("drv{id}.lua");
        self.dir.write(&script, &sender(n, keys));
        let stage = format!("drv={script}");
        let id_arg = id.to_string();
        let p = Proc::node(
            &format!("drv{id}"),
            &["--router", &self.addr, "--stage", &stage, "--id", &id_arg],
            &self.dir.dir,
        );
        self.senders.push(p);
        self.senders.len() - 1
    }

    /// Waits for exactly `n` answers at sender `s` (none more, after a short settle).
    fn answers(&self, s: usize, n: usize) -> Vec<Answer> {
        let p = &self.senders[s];
        p.wait_count("ANS ", n, BATCH);
        std::thread::sleep(SETTLE);
        let lines: Vec<String> = p
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("ANS "))
            .collect();
        assert_eq!(
            lines.len(),
            n,
            "{}: {} answers, expected exactly {n}\n{}",
            p.name,
            lines.len(),
            p.dump()
        );
        lines.iter().map(|l| parse(l)).collect()
    }

    /// Kills the receiver of `instance` and waits until the router has noticed.
    fn kill(&mut self, instance: u32) {
        self.receivers[instance as usize - 1].kill9();
        self.router.wait_err(" closed: ", WAIT);
    }
}

/// Answers per instance.
fn per_instance(answers: &[Answer]) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        *m.entry(a.instance).or_default() += 1;
    }
    m
}

/// Every sequence number 1..=n answered exactly once.
fn assert_each_seq_once(answers: &[Answer], n: u32) {
    let mut seqs: Vec<u32> = answers.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "each message answered exactly once"
    );
}

#[test]
fn roundrobin_gives_exact_thirds() {
    const N: u32 = 1200;
    let mut c = Cluster::start("rr", "roundrobin");
    let s = c.send(9, N, 0);
    let answers = c.answers(s, N as usize);
    assert_each_seq_once(&answers, N);
    assert_eq!(
        per_instance(&answers),
        BTreeMap::from([(1, 400), (2, 400), (3, 400)])
    );
}

#[test]
fn master_reaches_the_lowest_id_then_the_next_after_a_kill() {
    const N: u32 = 1200;
    let mut c = Cluster::start("master", "master");
    let s = c.send(9, N, 0);
    let answers = c.answers(s, N as usize);
    assert_each_seq_once(&answers, N);
    assert_eq!(per_instance(&answers), BTreeMap::from([(1, N as usize)]));

    c.kill(1);
    let s = c.send(10, N, 0);
    let answers = c.answers(s, N as usize);
    assert_each_seq_once(&answers, N);
    assert_eq!(per_instance(&answers), BTreeMap::from([(2, N as usize)]));
}

/// Key → owning instance, checking that every answer for a key came from the same instance.
fn owners(answers: &[Answer]) -> HashMap<u32, u32> {
    let mut owner = HashMap::new();
    for a in answers {
        let first = *owner.entry(a.key).or_insert(a.instance);
        assert_eq!(
            first, a.instance,
            "key {} went to instance {first} and to instance {}",
            a.key, a.instance
        );
    }
    owner
}

#[test]
fn hash_keeps_keys_on_their_instance_and_moves_only_the_dead_ones() {
    const KEYS: u32 = 1000;
    const N: u32 = 2 * KEYS; // every key twice
    const DEAD: u32 = 2;
    let mut c = Cluster::start("hash", "hash");
    let s = c.send(9, N, KEYS);
    let answers = c.answers(s, N as usize);
    assert_each_seq_once(&answers, N);
    for a in &answers {
        assert_eq!(
            a.key,
            (a.seq - 1) % KEYS + 1,
            "answer for the wrong key: {a:?}"
        );
    }
    let before = owners(&answers);
    assert_eq!(before.len(), KEYS as usize);
    let shares = per_instance(&answers);
    assert_eq!(
        shares.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "every instance owns keys: {shares:?}"
    );

    c.kill(DEAD);
    let s = c.send(10, N, KEYS);
    let answers = c.answers(s, N as usize);
    assert_each_seq_once(&answers, N);
    let after = owners(&answers);
    assert_eq!(after.len(), KEYS as usize);

    let mut moved_to: BTreeMap<u32, usize> = BTreeMap::new();
    for key in 1..=KEYS {
        let (was, now) = (before[&key], after[&key]);
        if was == DEAD {
            assert_ne!(now, DEAD, "key {key} still went to the killed instance");
            *moved_to.entry(now).or_default() += 1;
        } else {
            assert_eq!(
                now, was,
                "key {key} of surviving instance {was} moved to {now}"
            );
        }
    }
    // The killed instance's share is split among the survivors (64 points each on the ring).
    assert_eq!(
        moved_to.keys().copied().collect::<Vec<_>>(),
        [1, 3],
        "{moved_to:?}"
    );
    assert_eq!(
        moved_to.values().sum::<usize>(),
        before.values().filter(|i| **i == DEAD).count()
    );
}

#[test]
fn broadcast_delivers_every_message_to_every_instance() {
    const N: u32 = 1000;
    let mut c = Cluster::start("bcast", "broadcast");
    let s = c.send(9, N, 0);
    let answers = c.answers(s, 3 * N as usize);
    assert_eq!(
        per_instance(&answers),
        BTreeMap::from([(1, 1000), (2, 1000), (3, 1000)])
    );
    for i in 1..=3 {
        let mine: Vec<Answer> = answers
            .iter()
            .filter(|a| a.instance == i)
            .copied()
            .collect();
        assert_each_seq_once(&mine, N);
    }
}

#[test]
fn random_reaches_every_instance_and_gives_none_all() {
    const N: u32 = 1200;
    let mut c = Cluster::start("random", "random");
    let s = c.send(9, N, 0);
    let answers = c.answers(s, N as usize);
    assert_each_seq_once(&answers, N);
    let shares = per_instance(&answers);
    assert_eq!(
        shares.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "{shares:?}"
    );
    // Binomial(1200, 1/3): mean 400, sd ≈ 16; below 200 is over 12 sd away.
    for (i, n) in &shares {
        assert!(
            (200..N as usize).contains(n),
            "instance {i} got {n} of {N}: {shares:?}"
        );
    }
}
