//! The `hublink-server` binary: flags, logging, listener, signals.

use clap::Parser;
use hublink_server::{run, Config};

/// jemalloc rather than the system allocator. Every message a server holds for
/// replay lives for the history window while connections come and go around
/// it. Under that churn glibc's malloc could not reuse the space it freed:
/// in `scripts/soak` its live data (`mallinfo2`) stayed flat after the
/// five-minute window filled while its heap kept growing, +12 % in the next
/// seven minutes. With jemalloc the same run stays flat (-0.5 %).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    match runtime.enable_all().build() {
        Ok(rt) => rt.block_on(serve(config)),
        Err(e) => {
            eprintln!("hublink-server: cannot start the tokio runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hublink_server=info".into()),
        )
        .init();
    let listener = match listen(config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hublink-server: cannot listen on {}: {e}", config.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let state = match hublink_server::AppState::new(config) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("hublink-server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(listener, state, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hublink-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Binds with a deep accept queue. tokio's `TcpListener::bind` asks for 1,024
/// pending connections; a reconnect storm of 10,000 clients overflows that,
/// and the overflow waits for SYN retransmits (1 s, 3 s...) and client
/// backoff. The kernel caps the value at `net.core.somaxconn` (4,096 on
/// current Linux).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    const BACKLOG: u32 = 16_384;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
