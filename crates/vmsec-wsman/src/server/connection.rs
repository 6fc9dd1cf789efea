//! One connection: the stream watched for its header and idle clocks, and hyper serving
//! requests on it until it closes, times out, or the server shuts down.

use super::*;

/// What the idle and header timeouts of one connection watch.
pub(super) struct Activity {
    start: Instant,
    /// When the last request was answered (ms since `start`).
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// When the first byte of a request not yet handed to the service arrived (ms since
    /// `start`, plus one; zero for none): its headers must be in within the header timeout.
    head_since: AtomicU64,
    /// Whether a request on this connection authenticated: only then does an idle
    /// keep-alive connection get the long idle timeout.
    authenticated: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            authenticated: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request of this connection authenticated: it keeps the long idle timeout now.
    pub(super) fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
    }

    fn request_answered(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Bytes arrived: between requests, they start the next request's header clock.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since
                .store(self.now_ms().saturating_add(1), Ordering::Relaxed);
        }
    }

    /// How long a request's headers have been arriving, if one's are.
    fn head_for(&self) -> Option<Duration> {
        match self.head_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(self.now_ms().saturating_sub(t - 1))),
        }
    }

    /// How long the connection has been idle, if it is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.head_for().is_some() {
            return None;
        }
        let last = self.last_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(last)))
    }
}

/// The connection's stream, telling [`Activity`] when bytes arrive. hyper's own header
/// timeout also runs while a keep-alive connection waits for its next request, which would
/// close idle connections after the header timeout; this one starts at a request's first byte.
pub(super) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

pub(super) async fn serve_connection<S, P>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared<P>>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Provider,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let activity = activity.clone();
            async move {
                activity.request_started();
                let resp = handle(&shared, peer.ip(), &activity, req).await;
                activity.request_answered();
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    let stream = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let header = shared.config.header_read_timeout;
    let idle = shared.config.idle_timeout;
    let idle_before_login = idle.min(header);
    let mut tick = tokio::time::interval((idle_before_login / 4).max(Duration::from_millis(50)));
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                // Headers too slow: hang up, as on a dead peer (there is no request to answer).
                if activity.head_for().is_some_and(|d| d >= header) {
                    tracing::debug!(%peer, "request headers not received in time; closing");
                    return;
                }
                let limit = if activity.authenticated.load(Ordering::Relaxed) {
                    idle
                } else {
                    idle_before_login
                };
                if !closing && activity.idle_for().is_some_and(|d| d >= limit) {
                    tracing::debug!(%peer, "closing idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
