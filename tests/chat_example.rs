//! The chat example (cluster-examples/chat, issue 6) run for real with `stage run`: game
//! clients on two nodes talk through broker sockets (stage-spec §10) whose messages fan out
//! through the `route` service (stage-spec §9.1).

mod common;
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

#[test]
fn clients_on_two_nodes_chat_in_rooms_through_route() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let router = free_port().to_string();
    let base = chat_base_port();
    let mut stage = Proc::spawn_env(
        "stage",
        env!("CARGO_BIN_EXE_stage"),
        &["run", "cluster-examples/chat/topology.lua"],
        root,
        &[
            ("STAGE_CHAT_ROUTER", &router),
            ("STAGE_CHAT_PORT", &base.to_string()),
        ],
    );
    let (a, b) = (base + 1, base + 2);
    stage.wait_out(&format!("[chat1] chat: node 1 listening on port {a}"), WAIT);
    stage.wait_out(&format!("[chat2] chat: node 2 listening on port {b}"), WAIT);
    stage.wait_err("registered route:9", WAIT);

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
