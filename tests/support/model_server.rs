//! A stand-in for the model API on 127.0.0.1: answers each `POST /v1/responses` with the
//! server-sent events real Codex consumes. A user message containing `RUN: <command>` gets
//! an `exec_command` function call first; everything else gets a short assistant message.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct ModelServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl ModelServer {
    pub fn start() -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let counter = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            // Bounded: the server ends with the test, or after ten minutes at the latest.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
            while !stop_flag.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let counter = counter.clone();
                        std::thread::spawn(move || serve(stream, &counter));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        ModelServer { port, stop }
    }

    /// The `config.toml` that points Codex at this server.
    pub fn config_toml(&self) -> String {
        format!(
            "model = \"stand-in\"\nmodel_provider = \"standin\"\napproval_policy = \"never\"\nsandbox_mode = \"danger-full-access\"\n\n\
             [model_providers.standin]\nname = \"stand-in\"\nbase_url = \"http://127.0.0.1:{}/v1\"\nwire_api = \"responses\"\n\
             request_max_retries = 0\nstream_max_retries = 0\n",
            self.port
        )
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, counter: &AtomicU64) {
    stream.set_nonblocking(false).ok();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let events = if request_line.starts_with("POST") && request_line.contains("/responses") {
            respond(&serde_json::from_slice(&body).unwrap_or(Value::Null), n)
        } else {
            String::new()
        };
        let status = if events.is_empty() {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
            events.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(events.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

fn respond(request: &Value, n: u64) -> String {
    let input = request
        .get("input")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let last = input.last().cloned().unwrap_or(Value::Null);
    let last_user_text = input
        .iter()
        .rev()
        .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|i| {
            i.get("content")?
                .as_array()?
                .iter()
                .find_map(|c| c.get("text")?.as_str().map(str::to_string))
        })
        .unwrap_or_default();
    let answering_a_call = last.get("type").and_then(Value::as_str) == Some("function_call_output");
    let item = match last_user_text.split_once("RUN: ") {
        Some((_, cmd)) if !answering_a_call => json!({
            "type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_{n}"),
            "name": "exec_command", "arguments": json!({"cmd": cmd.lines().next().unwrap_or("true")}).to_string()
        }),
        _ => json!({
            "type": "message", "role": "assistant", "id": format!("msg_{n}"),
            "content": [{"type": "output_text", "text": format!("Done. I decided to keep it simple. ({})", last_user_text.chars().take(60).collect::<String>())}]
        }),
    };
    let id = format!("resp_{n}");
    let events = [
        (
            "response.created",
            json!({"type": "response.created", "response": {"id": id}}),
        ),
        (
            "response.output_item.done",
            json!({"type": "response.output_item.done", "item": item}),
        ),
        (
            "response.completed",
            json!({"type": "response.completed", "response": {"id": id,
            "usage": {"input_tokens": 12, "input_tokens_details": null, "output_tokens": 6, "output_tokens_details": null, "total_tokens": 18}}}),
        ),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}
