//! A TCP proxy between one instance and the cluster that can freeze: stop forwarding bytes
//! both ways without closing anything, as a partition that drops packets (rather than
//! refusing them) looks to both ends; thawed, it forwards what was held back, in order.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether bytes flow, and what sent by the client freezes them.
#[derive(Debug, Clone, Default)]
struct Gate {
    frozen: bool,
    /// Bytes that, once the client sends them, freeze the proxy before they are forwarded.
    trigger: Option<Vec<u8>>,
}

/// Which way a pump forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// A proxy listening on a loopback port, forwarding every connection to `upstream`.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    gate: watch::Sender<Gate>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gate, _) = watch::channel(Gate::default());
        let accept = tokio::spawn({
            let gate = gate.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let gate = gate.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            forward(client, server, &gate);
                        }
                    });
                }
            }
        });
        Self {
            addr,
            upstream,
            gate,
            accept,
        }
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        url.replace(&self.upstream.to_string(), &self.addr.to_string())
    }

    /// Stops forwarding, both ways, on every connection, now.
    pub fn freeze(&self) {
        self.gate.send_modify(|g| g.frozen = true);
    }

    /// Freezes the moment the client sends `pattern`: the bytes holding it are kept back.
    pub fn freeze_on(&self, pattern: &[u8]) {
        self.gate
            .send_modify(|g| g.trigger = Some(pattern.to_vec()));
    }

    /// Waits until the proxy is frozen (by [`Proxy::freeze_on`]'s trigger).
    pub async fn frozen(&self) {
        let mut gate = self.gate.subscribe();
        gate.wait_for(|g| g.frozen).await.unwrap();
    }

    /// Forwards again: first what was held back, then everything.
    pub fn thaw(&self) {
        self.gate.send_modify(|g| g.frozen = false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Pumps both ways between `client` and `server`, each way on its own task until its
/// sender closes; the other way goes on (a server's last words reach the client).
fn forward(client: TcpStream, server: TcpStream, gate: &watch::Sender<Gate>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(pump(
        client_read,
        server_write,
        gate.clone(),
        Direction::ToServer,
    ));
    tokio::spawn(pump(
        server_read,
        client_write,
        gate.clone(),
        Direction::ToClient,
    ));
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    gate: watch::Sender<Gate>,
    direction: Direction,
) {
    let mut open = gate.subscribe();
    let mut buffer = vec![0u8; 16 * 1024];
    // The end of the previous chunk, so that a trigger split across two reads is seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        if direction == Direction::ToServer {
            tail.extend_from_slice(chunk);
            gate.send_if_modified(|g| match &g.trigger {
                Some(pattern) if contains(&tail, pattern) => {
                    g.frozen = true;
                    g.trigger = None;
                    true
                }
                _ => false,
            });
            let keep = gate.borrow().trigger.as_ref().map_or(0, |p| p.len());
            tail.drain(..tail.len().saturating_sub(keep));
        }
        if open.wait_for(|g| !g.frozen).await.is_err() || to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
