//! The chat example (cluster-examples/chat, issue 6) run for real with `stage run`: game
//! clients on two nodes talk through broker sockets (stage-spec §10) whose messages fan out
//! through the `route` service (stage-spec §9.1).

mod common;
use common::markdown::example;
use common::{free_port, Proc, WAIT};

use std::net::{TcpListener, TcpStream};
use std::path::Path;

use bson::{doc, Document};

/// A base port B with B+1 and B+2 free: chat node N listens on $STAGE_CHAT_PORT + N. Taken
/// below Linux's ephemeral range (32768 up), where busy outgoing connections hold no ports.
fn chat_base_port() -> u16 {
    let seed = std::process::id() as usize + free_port() as usize;
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    (0..500)
        .map(|i| 20_000 + ((seed + i * 7919) % 12_000) as u16)
        .find(|&base| free(base + 1) && free(base + 2))
        .expect("two consecutive free ports between 20000 and 32000")
}

/// A game client speaking the example's protocol: one BSON document per frame (§10.2).
struct Client {
    name: &'static str,
    stream: TcpStream,
}

impl Client {
    fn connect(port: u16, name: &'static str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to a chat node");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        Client { name, stream }
    }

    fn send(&mut self, d: Document) {
        d.to_writer(&mut self.stream)
            .unwrap_or_else(|e| panic!("{}: send {e}", self.name));
    }

    /// The next document from the server, unwrapped from its `{"v": ...}` (§10.4 commit).
    fn next(&mut self) -> Document {
        let d = Document::from_reader(&mut self.stream)
            .unwrap_or_else(|e| panic!("{}: nothing more within {WAIT:?}: {e}", self.name));
        d.get_document("v")
            .unwrap_or_else(|_| panic!("{}: not a {{v: ...}} answer: {d}", self.name))
            .clone()
    }

    fn join(&mut self, room: &str) {
        self.send(doc! { "chat": { "join": { "name": self.name, "room": room } } });
        assert_eq!(self.next(), doc! { "joined": room }, "{}", self.name);
    }

    fn say(&mut self, text: &str) {
        self.send(doc! { "chat": { "say": text } });
    }

    /// The next document must be `from` saying `text` in `room`.
    fn hears(&mut self, from: &str, room: &str, text: &str) {
        let got = self.next();
        assert_eq!(
            got,
            doc! { "from": from, "room": room, "text": text },
            "{} expected {from}'s {text:?}",
            self.name
        );
    }

    /// Says `text` and hears it back: route has delivered to this client's node, so its
    /// subscription of the room is in place for anything published after this (§9.1).
    fn say_and_hear_self(&mut self, room: &str, text: &str) {
        self.say(text);
        self.hears(self.name, room, text);
    }
}

/// `newcomer` joins `room`, where `host` already is, and each hears what the other says: a
/// broadcast through route reaches both nodes (§9.1), the speaker's included.
fn meet(host: &mut Client, newcomer: &mut Client, room: &str) {
    newcomer.join(room);
    let hello = format!("{} here", newcomer.name);
    newcomer.say_and_hear_self(room, &hello);
    host.hears(newcomer.name, room, &hello);
    let welcome = format!("hi {}", newcomer.name);
    host.say(&welcome);
    host.hears(host.name, room, &welcome);
    newcomer.hears(host.name, room, &welcome);
}

/// The README's `cargo run -- run cluster-examples/chat/topology.lua`, the router and the chat
/// nodes on free ports; returns the launcher and the two nodes' client ports once they listen.
fn run_chat() -> (Proc, u16, u16) {
    let router = free_port().to_string();
    let base = chat_base_port();
    let stage = Proc::documented(
        "cluster-examples/chat/README.md",
        "run",
        &[
            ("STAGE_CHAT_ROUTER", &router),
            ("STAGE_CHAT_PORT", &base.to_string()),
        ],
    );
    let (a, b) = (base + 1, base + 2);
    stage.wait_out(&format!("[chat1] chat: node 1 listening on port {a}"), WAIT);
    stage.wait_out(&format!("[chat2] chat: node 2 listening on port {b}"), WAIT);
    stage.wait_err("registered route:9", WAIT);
    (stage, a, b)
}

/// The README's two terminal clients, `cargo run --example chat_client -- …` run by cargo in
/// this checkout (it builds only the example), with the README's ports 7101 and 7102 moved to
/// the nodes' free ones: Bob and Alice type the README's lines and both see its transcript.
#[test]
fn the_readme_clients_see_each_other() {
    let (mut stage, a, b) = run_chat();
    let doc = "cluster-examples/chat/README.md";
    let clients = example(doc, "clients");
    let mut procs = Vec::new();
    for line in clients.code.lines().filter(|l| !l.trim().is_empty()) {
        let line = line
            .replace("127.0.0.1:7101", &format!("127.0.0.1:{a}"))
            .replace("127.0.0.1:7102", &format!("127.0.0.1:{b}"));
        let args: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(args[..2], ["cargo", "run"], "{line}");
        let name = args[args.len() - 2];
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        procs.push(Proc::spawn_typed(name, "cargo", &args[1..], root));
    }
    let [alice, bob] = procs.as_mut_slice() else {
        panic!("{doc}: two clients, alice and bob")
    };
    // The first build of the example may take a while; then each client joins.
    let build = std::time::Duration::from_secs(600);
    alice.wait_out("* joined lobby", build);
    bob.wait_out("* joined lobby", build);
    let said: Vec<String> = example(doc, "clients").output_lines();
    let says = |line: &String| {
        let (who, text) = line.trim_start_matches("[lobby] ").split_once(": ")?;
        Some((who.to_owned(), text.to_owned()))
    };
    for line in &said {
        if let Some((who, text)) = says(line) {
            let client = if who == "alice" {
                &mut *alice
            } else {
                &mut *bob
            };
            client.type_line(&text);
            alice.wait_out(line, WAIT);
            bob.wait_out(line, WAIT);
        }
    }
    alice.wait_lines(&said, WAIT);
    bob.wait_lines(&said, WAIT);
    drop(procs);
    stage.stop_cleanly();
}

#[test]
fn clients_on_two_nodes_chat_in_rooms_through_route() {
    let (mut stage, a, b) = run_chat();

    // Commands before a join, and malformed joins, are answered with errors.
    let mut carol = Client::connect(a, "carol");
    carol.say("anyone?");
    assert_eq!(carol.next(), doc! { "error": "join a room first" });
    carol.send(doc! { "chat": { "join": { "name": "carol", "room": "no spaces" } } });
    assert!(carol.next().contains_key("error"));
    carol.join("other");
    let mut erin = Client::connect(b, "erin");
    erin.join("other");

    // Bob on node B, then Alice on node A, in the lobby: each hears the other.
    let mut bob = Client::connect(b, "bob");
    bob.join("lobby");
    bob.say_and_hear_self("lobby", "bob here");
    let mut alice = Client::connect(a, "alice");
    meet(&mut bob, &mut alice, "lobby");

    // Carol (node A, like Alice) and Erin (node B, like Bob) got none of it: the next they
    // hear is Carol in their own room, and that reaches nobody in the lobby.
    carol.say_and_hear_self("other", "quiet here");
    erin.hears("carol", "other", "quiet here");
    bob.say_and_hear_self("lobby", "after carol");
    alice.hears("bob", "lobby", "after carol");

    // Alice goes away: node A's last lobby client, so it leaves the room; Bob chats on, and
    // Dave, joining the lobby on node A again, talks with him both ways.
    drop(alice);
    stage.wait_out("[chat1] chat: alice left lobby", WAIT);
    bob.say_and_hear_self("lobby", "alice left");
    let mut dave = Client::connect(a, "dave");
    meet(&mut bob, &mut dave, "lobby");

    // Leaving by command works the same way: Dave is out and Bob is alone again.
    dave.send(doc! { "chat": { "leave": "" } });
    assert_eq!(dave.next(), doc! { "left": "lobby" });
    bob.say_and_hear_self("lobby", "alone");
    dave.say("still there?");
    assert_eq!(dave.next(), doc! { "error": "join a room first" });

    // Nothing went wrong in the scripts or the broker on the way.
    let errors: Vec<String> = stage
        .stderr()
        .into_iter()
        .filter(|l| l.contains("ERROR") || (l.contains("WARN") && l.contains("stage_node")))
        .filter(|l| !l.contains("links are not authenticated"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{}", stage.dump());

    stage.stop_cleanly();
}
