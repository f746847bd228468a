//! `streamlog-kafka serve --data DIR [--listen 127.0.0.1:9092] [--allow-remote]`:
//! a Kafka endpoint over a streamlog data directory.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use streamlog::{Broker, BrokerOptions};
use streamlog_kafka::{KafkaServer, ServerConfig};

const USAGE: &str = "usage: streamlog-kafka serve --data DIR [--listen ADDR] [--allow-remote] [--partitions N]
  --listen ADDR      address to listen on (default 127.0.0.1:9092)
  --allow-remote     required to listen on a non-loopback address
  --partitions N     partitions of auto-created topics (default 4)";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamlog-kafka: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut it = args.into_iter();
    match it.next().as_deref() {
        Some("serve") => {}
        Some("--help" | "-h") | None => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(other) => return Err(format!("unknown command {other:?}\n{USAGE}")),
    }
    let (mut data, mut listen, mut remote, mut config) =
        (None, "127.0.0.1:9092".to_owned(), false, ServerConfig::default());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next(),
            "--listen" => listen = it.next().ok_or("--listen needs an address")?,
            "--allow-remote" => remote = true,
            "--partitions" => {
                config.auto_create_partitions =
                    it.next().and_then(|n| n.parse().ok()).ok_or("--partitions needs a positive number")?;
            }
            _ => return Err(format!("unknown option {a:?}\n{USAGE}")),
        }
    }
    let data = data.ok_or(format!("--data DIR is required\n{USAGE}"))?;
    let addr: SocketAddr = listen.parse().map_err(|e| format!("bad --listen {listen:?}: {e}"))?;
    if !addr.ip().is_loopback() && !remote {
        return Err(format!("{addr} is not a loopback address: pass --allow-remote to listen on it"));
    }
    let broker = Arc::new(Broker::open(&data, BrokerOptions::default()).map_err(|e| e.to_string())?);
    let server = KafkaServer::start(Arc::clone(&broker), addr, config).map_err(|e| format!("listen {addr}: {e}"))?;
    println!("streamlog-kafka listening on {} (data {data})", server.local_addr());
    // Serve until stdin closes or the process is signalled.
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
    if std::env::var_os("STREAMLOG_KAFKA_EXIT_ON_EOF").is_none() {
        loop {
            std::thread::park();
        }
    }
    server.shutdown();
    match Arc::try_unwrap(broker) {
        Ok(b) => b.close().map_err(|e| e.to_string()),
        Err(_) => Ok(()),
    }
}
