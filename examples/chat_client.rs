//! A terminal client for the chat example (cluster-examples/chat): joins a room on one chat
//! node, says every line typed on stdin and prints what arrives.
//!
//! ```sh
//! cargo run -- run cluster-examples/chat/topology.lua            # in one terminal
//! cargo run --example chat_client -- 127.0.0.1:7101 alice lobby  # in another
//! cargo run --example chat_client -- 127.0.0.1:7102 bob lobby    # and a third
//! ```
//!
//! Typed lines: `/join ROOM` moves to another room, `/leave` leaves, anything else is said.
//! Frames are BSON documents, each its own length prefix (stage-spec §10.2); the server
//! answers with documents `{"v": ...}`.

use std::io::{BufRead, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use bson::{doc, Bson, Document};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, room] = args.as_slice() else {
        eprintln!("usage: chat_client HOST:PORT NAME ROOM");
        return ExitCode::from(2);
    };
    match run(addr, name, room) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: &str, name: &str, room: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || print_incoming(reader));
    send(
        &mut stream,
        doc! { "chat": { "join": { "name": name, "room": room } } },
    )?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let command = match line.trim_end() {
            "" => continue,
            "/leave" => doc! { "chat": { "leave": "" } },
            l => match l.strip_prefix("/join ") {
                Some(room) => doc! { "chat": { "join": { "name": name, "room": room.trim() } } },
                None => doc! { "chat": { "say": l } },
            },
        };
        send(&mut stream, command)?;
    }
    Ok(())
}

fn send(stream: &mut TcpStream, d: Document) -> Result<(), String> {
    let bytes = bson::to_vec(&d).map_err(|e| e.to_string())?;
    stream.write_all(&bytes).map_err(|e| format!("send: {e}"))
}

/// Prints each document the server sends until the connection ends, then exits the process
/// (nothing more can be said on a closed connection).
fn print_incoming(mut stream: TcpStream) {
    while let Ok(d) = Document::from_reader(&mut stream) {
        match d.get_document("v") {
            Ok(v) => println!("{}", describe(v)),
            Err(_) => println!("? {d}"),
        }
    }
    eprintln!("chat_client: connection closed");
    std::process::exit(0);
}

fn describe(v: &Document) -> String {
    let text = |k: &str| match v.get(k) {
        Some(Bson::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    if v.contains_key("text") {
        format!("[{}] {}: {}", text("room"), text("from"), text("text"))
    } else if v.contains_key("joined") {
        format!("* joined {}", text("joined"))
    } else if v.contains_key("left") {
        format!("* left {}", text("left"))
    } else if v.contains_key("error") {
        format!("! {}", text("error"))
    } else {
        format!("? {v}")
    }
}
