//! A small blocking client for OpenAI-compatible chat-completions endpoints (vLLM, TGI, hosted APIs), made for
//! batch scoring: a fixed pool of worker threads bounds the requests in flight, every request has a timeout, and
//! connection failures, timeouts, 429 and 5xx are retried with exponential backoff (honouring `Retry-After`).
//! Other HTTP errors (400, 401, 404, …) fail at once: repeating them cannot help. Built on `ureq` (rustls).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use base64::Engine as _;
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use serde_json::{json, Value};

/// Connection and retry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Base URL; `/chat/completions` is appended. A bare `http://host:port` gets `/v1` first (vLLM's prefix).
    pub base_url: String,
    /// Model name sent in every request (`model` of the request body).
    pub model: String,
    /// Sent as `Authorization: Bearer …` when non-empty.
    pub api_key: String,
    /// Requests in flight at once (EARL: 64).
    pub max_concurrency: usize,
    /// Whole-request timeout (connect, send, wait, read).
    pub timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff; doubled after each failed attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (a server's `Retry-After` may ask for more).
    pub max_backoff: Duration,
}

impl ClientOptions {
    /// Defaults for `model` at `base_url`: 64 in flight, 600 s timeout, 5 attempts, backoff 0.5 s doubling to 8 s.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: String::new(),
            max_concurrency: 64,
            timeout: Duration::from_secs(600),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Why a request failed for good.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// The server answered with an HTTP error: a non-retryable status, or a retryable one on the last attempt.
    #[error("{url}: HTTP {status} after {attempts} attempt(s): {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// The HTTP status of the last attempt.
        status: u16,
        /// Attempts made, the first included.
        attempts: u32,
        /// The response body of the last attempt (for the server's own explanation).
        body: String,
    },
    /// No HTTP answer (connection refused, DNS failure, timeout, broken connection) on every attempt.
    #[error("{url}: {msg} (after {attempts} attempt(s))")]
    Transport {
        /// The endpoint.
        url: String,
        /// The last attempt's failure.
        msg: String,
        /// Attempts made, the first included (0 where not counted: waiting for the endpoint, a stopped worker).
        attempts: u32,
    },
    /// The server answered 2xx with a body that is not a chat-completions response.
    #[error("{url}: malformed chat-completions response: {msg}")]
    Protocol {
        /// The endpoint.
        url: String,
        /// What is missing or malformed.
        msg: String,
    },
}

/// One chat message; `content` is a string or a list of parts (OpenAI format).
pub fn message(role: &str, content: Value) -> Value {
    json!({ "role": role, "content": content })
}

/// A user/system content list: the text first, then the images, as EARL sends them.
pub fn text_and_images(text: &str, images: &[&RgbImage]) -> Value {
    let mut parts = vec![json!({ "type": "text", "text": text })];
    parts.extend(images.iter().map(|img| json!({ "type": "image_url", "image_url": { "url": jpeg_data_url(img) } })));
    Value::Array(parts)
}

/// `data:image/jpeg;base64,…` at quality 75 (PIL's default, which EARL's encoder uses).
pub fn jpeg_data_url(img: &RgbImage) -> String {
    let mut bytes = Vec::new();
    // Encoding an in-memory RGB8 buffer into a Vec cannot fail (no I/O, supported colour type).
    let _ = JpegEncoder::new_with_quality(&mut bytes, 75).encode_image(img);
    format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A chat request without the model name (the client adds it).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation, as built by [`message`].
    pub messages: Vec<Value>,
    /// Completion token limit (`max_tokens`).
    pub max_tokens: u32,
    /// `None` leaves the server's default.
    pub temperature: Option<f64>,
}

/// A counting semaphore: at most `max_concurrency` HTTP exchanges at once across every clone of a client (so the
/// VIEScore and GroundScore rewards together respect one bound).
#[derive(Debug)]
struct Permits {
    free: Mutex<usize>,
    returned: Condvar,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.returned.notify_one();
    }
}

/// The client: cheap to clone; clones share the connection pool and the concurrency bound.
#[derive(Debug, Clone)]
pub struct ChatClient {
    agent: ureq::Agent,
    url: String,
    models_url: String,
    opts: ClientOptions,
    permits: Arc<Permits>,
}

enum Attempt {
    Done(String),
    Retry { msg: String, status: Option<(u16, String)>, after: Option<Duration> },
    Fail(ChatError),
}

fn endpoint_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    if after_scheme.contains('/') {
        base.to_string()
    } else {
        format!("{base}/v1")
    }
}

impl ChatClient {
    /// A client for `opts`; no connection is made until the first request.
    pub fn new(opts: ClientOptions) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(opts.timeout))
            .max_idle_connections(opts.max_concurrency.max(1))
            .max_idle_connections_per_host(opts.max_concurrency.max(1))
            .build();
        let base = endpoint_base(&opts.base_url);
        let permits = Arc::new(Permits { free: Mutex::new(opts.max_concurrency.max(1)), returned: Condvar::new() });
        Self {
            agent: config.into(),
            url: format!("{base}/chat/completions"),
            models_url: format!("{base}/models"),
            opts,
            permits,
        }
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The full chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn body(&self, req: &ChatRequest) -> String {
        let mut body = json!({ "model": self.opts.model, "messages": req.messages, "max_tokens": req.max_tokens });
        if let Some(t) = req.temperature {
            body["temperature"] = json!(t);
        }
        body.to_string()
    }

    fn attempt(&self, body: &str) -> Attempt {
        let _permit = self.permits.acquire();
        let mut call = self.agent.post(&self.url).header("content-type", "application/json");
        if !self.opts.api_key.is_empty() {
            call = call.header("authorization", &format!("Bearer {}", self.opts.api_key));
        }
        let mut resp = match call.send(body) {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { msg: e.to_string(), status: None, after: None },
        };
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = match resp.body_mut().read_to_string() {
            Ok(t) => t,
            Err(e) => return Attempt::Retry { msg: format!("reading the response: {e}"), status: None, after: None },
        };
        if status == 429 || status >= 500 {
            let snippet: String = text.chars().take(200).collect();
            return Attempt::Retry { msg: format!("HTTP {status}"), status: Some((status, snippet)), after };
        }
        if !(200..300).contains(&status) {
            let body: String = text.chars().take(500).collect();
            return Attempt::Fail(ChatError::Status { url: self.url.clone(), status, attempts: 1, body });
        }
        let protocol = |msg: String| Attempt::Fail(ChatError::Protocol { url: self.url.clone(), msg });
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return protocol(format!("not JSON ({e})")),
        };
        match value.pointer("/choices/0/message/content") {
            Some(Value::String(s)) => Attempt::Done(s.clone()),
            // Some servers return null content for an empty generation; that is an (unparsable) empty reply.
            Some(Value::Null) => Attempt::Done(String::new()),
            _ => protocol("no choices[0].message.content".into()),
        }
    }

    /// Sends one request, retrying transient failures; returns the first choice's message content.
    pub fn complete(&self, req: &ChatRequest) -> Result<String, ChatError> {
        let body = self.body(req);
        let mut backoff = self.opts.initial_backoff;
        let attempts = self.opts.max_attempts.max(1);
        for n in 1..=attempts {
            match self.attempt(&body) {
                Attempt::Done(s) => return Ok(s),
                Attempt::Fail(ChatError::Status { url, status, body, .. }) => {
                    return Err(ChatError::Status { url, status, attempts: n, body })
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { msg, status, after } => {
                    if n == attempts {
                        return Err(match status {
                            Some((status, body)) => {
                                ChatError::Status { url: self.url.clone(), status, attempts: n, body }
                            }
                            None => ChatError::Transport { url: self.url.clone(), msg, attempts: n },
                        });
                    }
                    let wait = after.unwrap_or(backoff).min(self.opts.max_backoff);
                    tracing::warn!(url = %self.url, attempt = n, error = %msg, wait_ms = wait.as_millis() as u64, "verifier request failed; retrying");
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(self.opts.max_backoff);
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Sends every request with at most `max_concurrency` in flight; results are in request order.
    pub fn complete_all(&self, reqs: &[ChatRequest]) -> Vec<Result<String, ChatError>> {
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Result<String, ChatError>>>> = reqs.iter().map(|_| Mutex::new(None)).collect();
        let workers = self.opts.max_concurrency.clamp(1, reqs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = reqs.get(i) else { break };
                    let r = self.complete(req);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner().unwrap_or_else(|p| p.into_inner()).unwrap_or_else(|| {
                    Err(ChatError::Transport { url: self.url.clone(), msg: "worker stopped early".into(), attempts: 0 })
                })
            })
            .collect()
    }

    /// Polls `GET …/models` until the server answers 200 or `max_wait` passes (EARL waits for its verifier the same
    /// way before scoring); returns the served model ids. Warns when the configured model is not among them.
    pub fn wait_until_ready(&self, max_wait: Duration, poll: Duration) -> Result<Vec<String>, ChatError> {
        let start = std::time::Instant::now();
        loop {
            let last = match self.agent.get(&self.models_url).call() {
                Ok(mut r) if r.status().as_u16() == 200 => {
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let ids: Vec<String> = v["data"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(String::from)).collect())
                        .unwrap_or_default();
                    if !ids.is_empty() && !ids.contains(&self.opts.model) {
                        tracing::warn!(model = %self.opts.model, served = ?ids, "the verifier does not list the configured model");
                    }
                    return Ok(ids);
                }
                Ok(r) => format!("HTTP {}", r.status().as_u16()),
                Err(e) => e.to_string(),
            };
            if start.elapsed() + poll > max_wait {
                return Err(ChatError::Transport { url: self.models_url.clone(), msg: last, attempts: 0 });
            }
            std::thread::sleep(poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_v1_prefix_only_when_no_path_is_given() {
        assert_eq!(endpoint_base("http://h:4877"), "http://h:4877/v1");
        assert_eq!(endpoint_base("http://h:4877/"), "http://h:4877/v1");
        assert_eq!(endpoint_base("http://h:4877/v1/"), "http://h:4877/v1");
        assert_eq!(endpoint_base("https://api.example.com/openai/v1"), "https://api.example.com/openai/v1");
    }

    #[test]
    fn images_become_jpeg_data_urls() {
        let url = jpeg_data_url(&RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10])));
        let b64 = url.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]); // JPEG SOI marker
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (8, 8));
    }
}
