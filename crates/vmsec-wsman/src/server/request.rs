//! One HTTP request, from its route to its reply: the credentials (`auth`), the body
//! (`body`), the engine's answer (on the connection's thread when it is quick, else on a
//! blocking thread), and the confirmation of credentials accepted from memory.

use super::*;

/// How far a request could be taken on the connection's own thread.
enum Answered {
    /// Answered.
    Fully(crate::engine::Response<Parts>),
    /// Read; answering it needs a blocking thread.
    Partly(Box<envelope::Request>),
    /// Needs a blocking thread from the start (a large body).
    No,
    /// The handler panicked here. Answered with 500, not run again elsewhere: it may have
    /// written before it failed (a GetKeyProtector's audit record, say).
    Panicked,
}

/// Bodies up to this size are read on the connection's thread: parsing them costs less
/// than handing them to another thread. The XML entry point's cost is linear in its input,
/// so this bounds the time a request can hold the thread other connections share.
pub const READ_AT_ONCE_MAX: usize = 16 * 1024;

/// Takes a request as far as it can without a blocking thread. On a 2-core machine the
/// hand-off to the blocking pool (a thread woken and put back to sleep per request) cost
/// more CPU than answering a small Get itself; only small bodies and quick requests
/// ([`Engine::is_quick`](crate::Engine::is_quick): point reads, and an invocation whose
/// audit append waits for nobody) are answered here.
fn answer_at_once<P: Provider>(shared: &Shared<P>, who: &Principal, body: &Bytes) -> Answered {
    if body.len() > READ_AT_ONCE_MAX {
        return Answered::No;
    }
    // A panic must not take the connection's task down; the request is answered with 500,
    // as one that panics on a blocking thread is.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let engine = &shared.engine;
        match engine.read(body) {
            Err(refused) => Answered::Fully(refused.map_body(Parts::from)),
            Ok(request) if engine.is_quick(&request) => {
                Answered::Fully(engine.answer_parts(who, &request, Instant::now()))
            }
            Ok(request) => Answered::Partly(Box::new(request)),
        }
    }));
    attempt.unwrap_or_else(|_| {
        tracing::error!("request handler panicked");
        Answered::Panicked
    })
}

/// Runs `f` on a blocking thread once a turn is free; `None` if it panicked.
pub(super) async fn blocking<P: Provider, T: Send + 'static>(
    shared: &Arc<Shared<P>>,
    f: impl FnOnce(&Shared<P>) -> T + Send + 'static,
) -> Option<T> {
    // The semaphore is never closed, so acquiring fails only if it were.
    let _turn = shared.turns.acquire().await.ok()?;
    let shared = shared.clone();
    match tokio::task::spawn_blocking(move || f(&shared)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            None
        }
    }
}

/// What a request asks for, by its method and path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Wsman,
    Metrics,
}

/// The route of `req`, or the answer for a path or method that has none. Checked before
/// the credentials: a wrong path costs nothing.
fn route<B>(req: &Request<B>) -> Result<Route, Box<Reply>> {
    let path = req.uri().path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let is_wsman = path.eq_ignore_ascii_case("/wsman");
    match (req.method(), is_wsman, path) {
        (&Method::POST, true, _) => {}
        (&Method::GET, false, "/metrics") => return Ok(Route::Metrics),
        (_, true, _) => {
            return Err(Box::new(reply(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT_CONTENT_TYPE,
                "use POST\n",
            )));
        }
        _ => {
            return Err(Box::new(reply(
                StatusCode::NOT_FOUND,
                TEXT_CONTENT_TYPE,
                "not found\n",
            )));
        }
    }
    if !is_xml_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(Box::new(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TEXT_CONTENT_TYPE,
            "send SOAP as Content-Type: application/soap+xml;charset=UTF-8\n",
        )));
    }
    Ok(Route::Wsman)
}

/// `GET /metrics`, for an authenticated caller.
async fn metrics_reply<P: Provider>(shared: &Arc<Shared<P>>) -> Reply {
    let extra = blocking(shared, |shared| shared.engine.provider().metrics_extra())
        .await
        .unwrap_or_default();
    let gauges = [
        (
            "vmsec_wsman_open_enumerations",
            "Open enumeration contexts.",
            shared.engine.open_enumerations() as u64,
        ),
        (
            "vmsec_wsman_request_body_bytes",
            "Memory held by request bodies being read or handled.",
            shared.bodies.held() as u64,
        ),
    ];
    reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        shared.metrics.render(&gauges, &extra),
    )
}

/// The route, then the credentials, then (WS-Man only) the body: each step refuses what it
/// can before the next, costlier one runs.
pub(super) async fn handle<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    activity: &Activity,
    req: Request<Incoming>,
) -> Reply {
    let route = match route(&req) {
        Ok(route) => route,
        Err(r) => return *r,
    };
    let who = match authenticate(shared, peer, &req).await {
        Ok(who) => who,
        Err(r) => return *r,
    };
    // Kept for a full check should remembered credentials no longer stand (see `stands`).
    let authorization = who
        .remembered
        .is_some()
        .then(|| req.headers().get(header::AUTHORIZATION).cloned())
        .flatten();
    activity.authenticated();
    if route == Route::Metrics {
        if let Err(refusal) = stands(shared, &who)
            && let Err(r) = after_refusal(shared, peer, authorization.as_ref(), refusal).await
        {
            return *r;
        }
        return metrics_reply(shared).await;
    }
    let started = Instant::now();
    // Held until the request is answered: the body's bytes stay in memory until then.
    let (body, _held) = match read_body(shared, &who.user, req.into_body()).await {
        Ok(b) => b,
        Err((r, outcome)) => {
            shared.metrics.record("unknown", outcome, started.elapsed());
            return r;
        }
    };
    let mut response = answer(shared, &who, body.clone()).await;
    // Computed, not yet sent: credentials accepted from memory must still stand. If they do
    // not, they get the full check, and the request is answered anew for whom it finds.
    let mut who = who;
    if let Err(refusal) = stands(shared, &who) {
        match after_refusal(shared, peer, authorization.as_ref(), refusal).await {
            Ok(fresh) => {
                response = answer(shared, &fresh, body).await;
                who = fresh;
            }
            Err(r) => {
                shared
                    .metrics
                    .record(response.operation, "unauthenticated", started.elapsed());
                return *r;
            }
        }
    }
    shared
        .metrics
        .record(response.operation, response.outcome, started.elapsed());
    tracing::debug!(
        user = %who.user,
        %peer,
        operation = response.operation,
        outcome = response.outcome,
        "request handled"
    );
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if response.soap {
        SOAP_CONTENT_TYPE
    } else {
        TEXT_CONTENT_TYPE
    };
    reply_parts(status, content_type, response.body.into_chunks())
}

/// The engine's response to `who`'s request `body`: on this thread when that is quick
/// ([`answer_at_once`]), else on a blocking thread; a 500 fault if the handler panicked.
async fn answer<P: Provider>(
    shared: &Arc<Shared<P>>,
    who: &Principal,
    body: Bytes,
) -> crate::engine::Response<Parts> {
    let result = match answer_at_once(shared, who, &body) {
        Answered::Fully(r) => Some(r),
        Answered::Partly(request) => {
            let who = who.clone();
            blocking(shared, move |shared| {
                shared.engine.answer_parts(&who, &request, Instant::now())
            })
            .await
        }
        Answered::No => {
            let who = who.clone();
            blocking(shared, move |shared| {
                shared.engine.handle_parts(&who, &body, Instant::now())
            })
            .await
        }
        Answered::Panicked => None,
    };
    result.unwrap_or_else(|| {
        let fault = Fault::new(
            FaultKind::InternalError,
            "the service failed while handling the request",
        );
        crate::engine::Response {
            status: 500,
            soap: true,
            body: fault
                .to_envelope(None, &shared.config.engine.machine)
                .into(),
            operation: "unknown",
            outcome: "InternalError",
        }
    })
}

/// Whether a request's Content-Type may hold a SOAP envelope. WinRM clients send
/// `application/soap+xml`; the XML types are taken too, and so is no Content-Type at all.
fn is_xml_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else { return true };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let media = text.split(';').next().unwrap_or("").trim();
    ["application/soap+xml", "text/xml", "application/xml"]
        .iter()
        .any(|t| media.eq_ignore_ascii_case(t))
}
