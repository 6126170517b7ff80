//! `/healthz`, `/readyz` and `/metrics` over a minimal HTTP/1.1 server on tokio.
//!
//! Three GET routes read by a probe and a scraper do not need a web framework: axum would add
//! hyper, tower and their dependencies to every build for no feature we use. Each connection
//! answers one request and closes; heads are bounded in size and time.

use super::metrics::{CONTENT_TYPE, Metrics};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const MAX_HEAD_BYTES: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 32;

/// One HTTP answer: status line, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.status,
            self.content_type,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// The method and path of a request head, or why it is unusable. Pure.
pub fn parse_request_line(head: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_string())?;
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            let path = target.split('?').next().unwrap_or(target);
            Ok((method.to_string(), path.to_string()))
        }
        _ => Err(format!("not an HTTP/1.x request line: {line:?}")),
    }
}

/// Serves until the task is aborted.
pub async fn serve<R, Fut>(listener: TcpListener, metrics: Arc<Metrics>, ready: R)
where
    R: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let ready = Arc::new(ready);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many http connections; closing this one");
            continue;
        };
        let (metrics, ready) = (metrics.clone(), ready.clone());
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &metrics, ready.as_ref()).await {
                tracing::debug!(%peer, %error, "http connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn answer<R, Fut>(mut stream: TcpStream, metrics: &Metrics, ready: &R) -> std::io::Result<()>
where
    R: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(READ_TIMEOUT, read_head).await.is_err() {
        return Ok(());
    }
    let response = match parse_request_line(&head) {
        Err(reason) => Response::text(400, reason + "\n"),
        Ok((method, _)) if method != "GET" && method != "HEAD" => Response::text(405, "only GET\n"),
        Ok((_, path)) => route(&path, metrics, ready).await,
    };
    stream.write_all(&response.to_bytes()).await?;
    stream.shutdown().await
}

async fn route<R, Fut>(path: &str, metrics: &Metrics, ready: &R) -> Response
where
    R: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    match path {
        "/healthz" => Response::text(200, "alive\n"),
        "/readyz" => {
            // Draining first: a stopping worker still holds its channel while it finishes.
            if metrics.draining() {
                return Response::text(503, "not ready: draining after a shutdown request\n");
            }
            if !metrics.connected() {
                return Response::text(503, "not ready: broker not connected\n");
            }
            match tokio::time::timeout(READY_TIMEOUT, ready()).await {
                Ok(Ok(())) => Response::text(200, "ready\n"),
                Ok(Err(reason)) => Response::text(503, format!("not ready: {reason}\n")),
                Err(_) => Response::text(503, "not ready: readiness check timed out\n"),
            }
        }
        "/metrics" => Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body: metrics.render(),
        },
        _ => Response::text(404, "not found: try /healthz, /readyz or /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_or_explain() {
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap(),
            ("GET".to_string(), "/metrics".to_string())
        );
        assert!(parse_request_line(b"hello\r\n\r\n").is_err());
        assert!(parse_request_line(b"GET / SPDY/3\r\n\r\n").is_err());
        assert!(parse_request_line(b"\xff\xfe").is_err());
    }

    #[tokio::test]
    async fn readiness_needs_the_broker_and_the_processor() {
        let m = Metrics::new();
        let ok = || async { Ok::<(), String>(()) };
        assert_eq!(route("/readyz", &m, &ok).await.status, 503);
        m.set_connected(true);
        assert_eq!(route("/readyz", &m, &ok).await.status, 200);
        let db_down = || async { Err::<(), String>("database unreachable".into()) };
        let r = route("/readyz", &m, &db_down).await;
        assert_eq!(r.status, 503);
        assert!(r.body.contains("database unreachable"));
        assert_eq!(route("/nope", &m, &ok).await.status, 404);
        m.set_draining();
        let r = route("/readyz", &m, &ok).await;
        assert_eq!(r.status, 503, "draining is not ready");
        assert!(r.body.contains("draining"), "{}", r.body);
        assert_eq!(route("/healthz", &m, &ok).await.status, 200, "but alive");
    }
}
