//! # streamlog-kafka
//!
//! A Kafka wire-protocol front for a [`streamlog::Broker`]: unmodified Kafka
//! clients (librdkafka and its bindings, kcat, kafka-python, the Java client)
//! produce to and consume from the broker's topics over TCP.
//!
//! ```no_run
//! use std::sync::Arc;
//! use streamlog::{Broker, BrokerOptions};
//! use streamlog_kafka::{KafkaServer, ServerConfig};
//!
//! let broker = Arc::new(Broker::open("/tmp/data", BrokerOptions::default())?);
//! let server = KafkaServer::start(Arc::clone(&broker), "127.0.0.1:0", ServerConfig::default())?;
//! println!("bootstrap.servers={}", server.local_addr());
//! server.shutdown();
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! Design: one thread per connection (bounded by
//! [`ServerConfig::max_connections`]), requests of one connection answered
//! in order as Kafka does; a Fetch long poll parks its thread until an
//! append wakes it ([`streamlog::Partition::wait_for_any`]). Kafka's
//! RecordBatch v2 is transcoded to and from streamlog's own batches.

mod api;
mod conn;
mod groups;
mod records;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use streamlog::Broker;

pub use conn::{Decoded, SUPPORTED, decode_request};

/// Options of a [`KafkaServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Partitions of a topic created by a Metadata request for an unknown
    /// topic (Kafka's `num.partitions`; client test suites expect 4).
    /// Default: 4.
    pub auto_create_partitions: u32,
    /// Create unknown topics named in Metadata requests that allow it
    /// (Kafka's `auto.create.topics.enable`). Default: `true`.
    pub auto_create_topics: bool,
    /// Largest request frame accepted; a larger one closes the connection
    /// (Kafka's `socket.request.max.bytes`). Default: 100 MiB.
    pub max_frame_bytes: usize,
    /// Connections served at once; more are closed on accept. Default: 1024.
    pub max_connections: usize,
    /// A connection that sends no request for this long (or does not take
    /// a response for this long) is closed, its slot freed (Kafka's
    /// `connections.max.idle.ms`; zero: never). Default: 10 minutes.
    pub connections_max_idle: Duration,
    /// Longest Fetch long poll, whatever the client asks. Default: 30 s.
    pub max_fetch_wait: Duration,
    /// Most record bytes in one Fetch response, whatever the client asks
    /// (Kafka's broker setting `fetch.max.bytes`); a response still holds
    /// one batch past it, so that a consumer always makes progress.
    /// Default: 55 MiB, Kafka's.
    pub max_fetch_bytes: usize,
    /// The host advertised in Metadata and FindCoordinator responses.
    /// Default: the listener's address.
    pub advertised_host: Option<String>,
    /// How long the sequence state of an idle idempotent producer is kept
    /// (Kafka's `producer.id.expiration.ms`). Default: 1 day.
    pub producer_id_expiration: Duration,
    /// Idempotent producer ids tracked at most; past it the least recently
    /// used one is forgotten. Default: 100 000.
    pub max_producer_ids: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auto_create_partitions: 4,
            auto_create_topics: true,
            max_frame_bytes: 100 << 20,
            max_connections: 1024,
            connections_max_idle: Duration::from_secs(600),
            max_fetch_wait: Duration::from_secs(30),
            max_fetch_bytes: 55 << 20,
            advertised_host: None,
            producer_id_expiration: Duration::from_secs(24 * 60 * 60),
            max_producer_ids: 100_000,
        }
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub broker: Arc<Broker>,
    pub config: ServerConfig,
    pub addr: SocketAddr,
    pub stopping: AtomicBool,
    pub producers: api::ProducerState,
    pub groups: groups::Groups,
    connections: Mutex<Vec<(u64, TcpStream)>>,
    live: AtomicUsize,
}

impl Shared {
    fn new(broker: Arc<Broker>, config: ServerConfig, addr: SocketAddr) -> Shared {
        let producers = api::ProducerState::new(config.producer_id_expiration, config.max_producer_ids);
        Shared {
            broker,
            config,
            addr,
            stopping: AtomicBool::new(false),
            producers,
            groups: groups::Groups::default(),
            connections: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
        }
    }
}

/// Entry points for the fuzz target and the randomized tests: the server's
/// request path (decode, dispatch, encode) without a socket.
#[cfg(feature = "internals")]
pub mod internals {
    use super::*;

    /// Answers request frames as one connection of a server would.
    pub struct Dispatcher {
        shared: Shared,
        out: bytes::BytesMut,
    }

    impl Dispatcher {
        /// A dispatcher over `broker`. It behaves as a server that is
        /// stopping, so that nothing waits: a Fetch long poll or a JoinGroup
        /// answers at once.
        pub fn new(broker: Arc<Broker>, config: ServerConfig) -> Dispatcher {
            let shared = Shared::new(broker, config, SocketAddr::from(([127, 0, 0, 1], 9092)));
            shared.stopping.store(true, Ordering::Release);
            Dispatcher { shared, out: bytes::BytesMut::new() }
        }

        /// One request frame (without its 4-byte size prefix) to its response
        /// frame (with it); `None` when the connection would be closed or
        /// nothing sent (acks=0).
        pub fn handle(&mut self, frame: bytes::Bytes) -> Option<&[u8]> {
            match conn::respond(&self.shared, frame, &mut self.out) {
                conn::Reply::Send => Some(&self.out),
                conn::Reply::Nothing | conn::Reply::Close => None,
            }
        }
    }
}

/// A running Kafka front for one broker. Dropping it shuts it down.
pub struct KafkaServer {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    reaper: Option<JoinHandle<()>>,
    handlers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for KafkaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaServer").field("addr", &self.shared.addr).finish()
    }
}

impl KafkaServer {
    /// Binds `addr` (port 0 picks a free port: see
    /// [`KafkaServer::local_addr`]) and serves the broker's topics. The
    /// endpoint works when this returns.
    pub fn start(broker: Arc<Broker>, addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<KafkaServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(broker, config, addr));
        let handlers = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let shared = Arc::clone(&shared);
            let handlers = Arc::clone(&handlers);
            std::thread::Builder::new()
                .name("kafka-accept".into())
                .spawn(move || accept_loop(listener, shared, handlers))?
        };
        let reaper = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("kafka-groups".into()).spawn(move || {
                while !shared.stopping.load(Ordering::Acquire) {
                    std::thread::park_timeout(Duration::from_millis(100));
                    shared.groups.expire_sessions();
                }
            })?
        };
        Ok(KafkaServer { shared, acceptor: Some(acceptor), reaper: Some(reaper), handlers })
    }

    /// The bound address (the port chosen when started with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Connections being served now.
    pub fn connection_count(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Stops accepting, closes every connection (a Fetch long poll ends
    /// within 100 ms) and joins the server's threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.groups.wake_all();
        // Wake the acceptor with a connection of our own.
        let _ = TcpStream::connect_timeout(&wake_addr(self.shared.addr), Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for (_, s) in self.shared.connections.lock().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(r) = self.reaper.take() {
            r.thread().unpark();
            let _ = r.join();
        }
        let handlers = std::mem::take(&mut *self.handlers.lock());
        for h in handlers {
            let _ = h.join();
        }
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop();
        }
    }
}

/// The address to connect to in order to reach a listener bound to `addr`
/// (an unspecified address is reached through loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    a
}

/// How long the acceptor waits after a failed accept before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// A served connection's entry in [`Shared::connections`] and its count in
/// [`Shared::live`], released when its thread ends, by return or by panic.
struct ConnectionSlot<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        self.shared.connections.lock().retain(|(i, _)| *i != self.id);
        self.shared.live.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, handlers: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors (EMFILE), most likely: the connection stays
            // queued and the next accept fails at once. Not a busy loop.
            std::thread::sleep(ACCEPT_RETRY);
            continue;
        };
        if shared.live.load(Ordering::Acquire) >= shared.config.max_connections {
            drop(stream); // Over the limit: closed at once.
            continue;
        }
        let _ = stream.set_nodelay(true);
        // Idle clients, and clients that stop reading their responses, do
        // not hold a slot and a thread for ever.
        let idle = Some(shared.config.connections_max_idle).filter(|d| !d.is_zero());
        if stream.set_read_timeout(idle).is_err() || stream.set_write_timeout(idle).is_err() {
            continue;
        }
        let Ok(clone) = stream.try_clone() else { continue };
        next_id += 1;
        let id = next_id;
        shared.connections.lock().push((id, clone));
        shared.live.fetch_add(1, Ordering::AcqRel);
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new().name(format!("kafka-conn-{id}")).spawn(move || {
            // Gives the slot back and closes the socket even if serving
            // panics: otherwise the client would hang on a connection the
            // server still holds, and the slot would never come back.
            let _slot = ConnectionSlot { shared: &conn_shared, id };
            conn::serve(&conn_shared, stream);
        });
        let mut hs = handlers.lock();
        hs.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => hs.push(h),
            Err(_) => {
                shared.connections.lock().retain(|(i, _)| *i != id);
                shared.live.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}
