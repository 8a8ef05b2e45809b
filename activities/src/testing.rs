//! Test support shared by this crate's unit tests, its benches and the worker's CLI tests: a
//! real `redis-server` on a free port, stopped when dropped. Not part of the worker's API.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throw-away `redis-server` (no persistence) on a free loopback port.
pub struct TestRedis {
    child: Child,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
}

impl TestRedis {
    /// Starts it and waits (at most 10 s) until it accepts connections. Panics when
    /// `redis-server` is missing (`scripts/install-deps.sh` installs it): only for tests.
    pub fn start_blocking() -> TestRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TestRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    /// [`TestRedis::start_blocking`] for async tests.
    pub async fn start() -> TestRedis {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .expect("start redis")
    }

    /// A managed connection to it.
    pub async fn conn(&self) -> redis::aio::ConnectionManager {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("connect to the test redis")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
