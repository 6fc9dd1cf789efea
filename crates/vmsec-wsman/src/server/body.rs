//! Request bodies: read under the size cap, the body timeout and the memory budget.

use super::*;

/// Why a body was not read whole.
pub(super) enum BodyRefused {
    TooLarge,
    NoMemory,
    TimedOut,
    Unreadable(hyper::Error),
}

/// Reads the body of `user`'s request, refusing it past the size cap, past the body memory
/// budget, or past the body timeout; the error carries the reply and the metrics outcome.
/// What the body holds is reserved in the budget as it arrives (all of it at once when its
/// length is declared, since that much is then allocated) and given back when the returned
/// reservation is dropped.
pub(super) async fn read_body<P: Provider>(
    shared: &Arc<Shared<P>>,
    user: &str,
    mut body: Incoming,
) -> Result<(Bytes, BodyReservation), (Reply, &'static str)> {
    use hyper::body::Body as _;
    let max = shared.config.max_request_bytes;
    let mut held = shared.bodies.reservation(user);
    let declared = body.size_hint().exact();
    let read = async {
        let mut buf = BytesMut::new();
        if let Some(n) = declared {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > max {
                return Err(BodyRefused::TooLarge);
            }
            if !held.grow(n) {
                return Err(BodyRefused::NoMemory);
            }
            buf.reserve(n);
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BodyRefused::Unreadable)?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > max {
                return Err(BodyRefused::TooLarge);
            }
            if declared.is_none() && !held.grow(data.len()) {
                return Err(BodyRefused::NoMemory);
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    };
    let refused = match tokio::time::timeout(shared.config.body_read_timeout, read).await {
        Ok(Ok(bytes)) => return Ok((bytes, held)),
        Ok(Err(why)) => why,
        Err(_) => BodyRefused::TimedOut,
    };
    Err(body_refused(shared, refused))
}

/// The answer to a body that was not read whole, with its metrics outcome. The rest of the
/// body is unread, so the connection cannot be reused.
pub(super) fn body_refused<P>(shared: &Shared<P>, why: BodyRefused) -> (Reply, &'static str) {
    let (mut r, outcome) = match why {
        BodyRefused::TooLarge => {
            let max = shared.config.max_request_bytes;
            let fault = Fault::new(
                FaultKind::EncodingLimit,
                format!("the request is larger than the server's limit of {max} bytes"),
            )
            .with_detail("ServiceEnvelopeLimit");
            let r = reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                SOAP_CONTENT_TYPE,
                fault.to_envelope(None, &shared.config.engine.machine),
            );
            (r, "EncodingLimit")
        }
        BodyRefused::NoMemory => {
            shared.metrics.body_refused();
            let mut r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT_CONTENT_TYPE,
                "the server holds as many request bodies as it may; retry later\n",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            (r, "body_memory")
        }
        BodyRefused::TimedOut => {
            let r = reply(
                StatusCode::REQUEST_TIMEOUT,
                TEXT_CONTENT_TYPE,
                "the request body was not received in time\n",
            );
            (r, "body_timeout")
        }
        BodyRefused::Unreadable(e) => {
            tracing::debug!(error = %e, "reading the request body failed");
            let r = reply(
                StatusCode::BAD_REQUEST,
                TEXT_CONTENT_TYPE,
                "the request body could not be read\n",
            );
            (r, "bad_request")
        }
    };
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    (r, outcome)
}
