//! What the server sends: a reply whose body is the parts it was written in.

use super::*;

pub(super) type Reply = hyper::Response<Chunks>;

/// A reply body sent as the parts it was written in, with its exact length (so
/// `Content-Length`): hyper writes them with one vectored write, and a part shared with
/// other replies (a key protector's XML) is never copied into a buffer of this reply's.
pub(crate) struct Chunks {
    parts: std::collections::VecDeque<Bytes>,
    left: u64,
}

impl Chunks {
    fn new(parts: Vec<Bytes>) -> Chunks {
        let left = parts.iter().map(|b| b.len() as u64).sum();
        Chunks {
            parts: parts.into_iter().filter(|b| !b.is_empty()).collect(),
            left,
        }
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(b) = &next {
            self.left -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    reply_parts(status, content_type, vec![body.into()])
}

pub(super) fn reply_parts(
    status: StatusCode,
    content_type: &'static str,
    parts: Vec<Bytes>,
) -> Reply {
    let mut r = hyper::Response::new(Chunks::new(parts));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(super) const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
pub(super) const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
