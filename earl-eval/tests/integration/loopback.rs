//! A chat-completions server on 127.0.0.1 (ephemeral port) with scripted replies, shared by the verifier and the
//! evaluation-judge tests: each connection is served on its own thread and closed after one response; the script
//! sees the request's index and content and returns a status, body, delay and headers.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// What the server saw: method + path, headers (lower-case names) and the JSON body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
}

pub fn ok(content: &str) -> Reply {
    let body = json!({ "id": "x", "object": "chat.completion",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }] });
    Reply { status: 200, body: body.to_string(), delay: Duration::ZERO, headers: vec![] }
}

pub fn status(code: u16) -> Reply {
    Reply { status: code, body: format!("{{\"error\": \"scripted {code}\"}}"), delay: Duration::ZERO, headers: vec![] }
}

type Script = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub in_flight_max: Arc<AtomicUsize>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        if k == "content-length" {
            len = v.parse().ok()?;
        }
        headers.push((k, v));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        line: line.trim_end().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// Starts the scripted server; each connection is served on its own thread and closed after one response.
pub fn serve(script: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (in_flight, in_flight_max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let script: Arc<Script> = Arc::new(script);
    let (seen2, max2) = (seen.clone(), in_flight_max.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, script, in_flight, max) = (seen2.clone(), script.clone(), in_flight.clone(), max2.clone());
            std::thread::spawn(move || {
                let Some(req) = read_request(&mut stream) else { return };
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push(req.clone());
                    s.len() - 1
                };
                let reply = script(n, &req);
                std::thread::sleep(reply.delay);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let mut head = format!(
                    "HTTP/1.1 {} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = stream.write_all(format!("{head}\r\n{}", reply.body).as_bytes());
            });
        }
    });
    Server { addr, seen, in_flight_max }
}

/// How many images a request carries; semantic-consistency queries have two, perceptual-quality ones one.
pub fn images_in(req: &Seen) -> usize {
    req.body["messages"].as_array().map_or(0, |ms| {
        ms.iter().filter_map(|m| m["content"].as_array()).flatten().filter(|p| p["type"] == "image_url").count()
    })
}
