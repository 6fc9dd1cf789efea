//! Credentials: HTTP Basic parsed from the `Authorization` header and checked before any
//! body is read, under the login rate limit.

use super::*;
use crate::{AuthRefusal, Confirmation};

pub(super) fn unauthorized() -> Reply {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        TEXT_CONTENT_TYPE,
        "authentication required\n",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"WSMAN\""),
    );
    r
}

/// Splits a `Basic` Authorization header into user and password.
pub(super) fn basic_credentials(value: &HeaderValue) -> Option<(String, Zeroizing<String>)> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), Zeroizing::new(password.to_owned())))
}

/// The caller the request's `Authorization` header stands for, checked before the body is
/// read. Credentials verified before are accepted here from the provider's memory, on the
/// connection's thread, and confirmed against the store before the reply ([`stands`]); any
/// other takes a token of the source's login budget, then has its password
/// checked on a blocking thread. No, bad or unknown credentials get 401; a source out of
/// tokens gets 429 without any check; credentials that cannot be checked (the store is
/// down) get 503.
pub(super) async fn authenticate<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    req: &Request<Incoming>,
) -> Result<Principal, Box<Reply>> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(Box::new(unauthorized()));
    };
    let creds = basic_credentials(value);
    if let Some(who) = from_memory(shared, peer, &creds) {
        return Ok(who);
    }
    check_in_full(shared, peer, creds).await
}

/// The caller, if these credentials were verified before (the provider's memory).
fn from_memory<P: Provider>(
    shared: &Shared<P>,
    peer: IpAddr,
    creds: &Option<(String, Zeroizing<String>)>,
) -> Option<Principal> {
    let (user, password) = creds.as_ref()?;
    // A panic must not take the connection's task down: the blocking way answers it.
    let provider = shared.engine.provider();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        provider.authenticate_verified(user, password, peer)
    }))
    .ok()
    .flatten()
}

/// How long a login that finds its source's budget spent waits while checks of that source
/// are under way. A client opening many sessions at once (a script's parallel jobs) sends the
/// same credentials on each: the first of them verified lets the others in from memory, and
/// a right password gives its token back for another user's login. A password check takes
/// well under a second.
const LOGIN_WAIT: Duration = Duration::from_secs(5);

/// What a login gets in its turn (see [`login_turn`]).
enum Turn<'a> {
    /// A token: its password is to be checked.
    Check(LoginCheck<'a>),
    /// A check that ended while it waited verified these credentials.
    FromMemory(Principal),
}

/// A token of `peer`'s login budget for a check about to run. With none left, waits (up to
/// [`LOGIN_WAIT`]) while checks of the source are under way, then takes the credentials from
/// memory if one of those verified them; 429 once none is under way, or at the deadline.
async fn login_turn<'a, P: Provider>(
    shared: &'a Shared<P>,
    peer: IpAddr,
    creds: &Option<(String, Zeroizing<String>)>,
) -> Result<Turn<'a>, Box<Reply>> {
    let deadline = Instant::now() + LOGIN_WAIT;
    loop {
        let ended = shared.limiter.check_ended();
        let retry = match shared.limiter.begin(peer, Instant::now()) {
            Ok(check) => return Ok(Turn::Check(check)),
            Err(retry) => retry,
        };
        let now = Instant::now();
        if !shared.limiter.checking(peer) || now >= deadline {
            shared.metrics.rate_limited();
            let mut r = reply(
                StatusCode::TOO_MANY_REQUESTS,
                TEXT_CONTENT_TYPE,
                "too many failed logins; retry later\n",
            );
            if let Ok(v) = HeaderValue::from_str(&retry.as_secs().to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(Box::new(r));
        }
        let _ = tokio::time::timeout(deadline - now, ended).await;
        if let Some(who) = from_memory(shared, peer, creds) {
            return Ok(Turn::FromMemory(who));
        }
    }
}

/// The full check of credentials, as for a new login: a token of the source's login budget
/// (429 without any check when it has none), then the provider's `authenticate` on a
/// blocking thread (which hashes the password and audits a refusal).
pub(super) async fn check_in_full<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    creds: Option<(String, Zeroizing<String>)>,
) -> Result<Principal, Box<Reply>> {
    let check = match login_turn(shared, peer, &creds).await? {
        Turn::Check(check) => check,
        Turn::FromMemory(who) => return Ok(who),
    };
    // Malformed credentials keep their token spent, like a wrong password.
    let checked = match creds {
        Some((user, password)) => {
            blocking(shared, move |shared| {
                shared
                    .engine
                    .provider()
                    .authenticate(&user, &password, peer)
            })
            .await
        }
        None => None,
    };
    match checked {
        Some(Ok(who)) => {
            check.succeeded(Instant::now());
            Ok(who)
        }
        Some(Err(AuthRefusal::Unavailable)) => Err(Box::new(unavailable())),
        _ => Err(login_failed(shared)),
    }
}

/// Whether `who` may have its reply: always, unless its credentials were accepted from
/// memory ([`Principal::remembered`]) and the store no longer holds what they were verified
/// against (`Rejected`), or cannot say (`Unavailable`). A request the provider neither
/// confirmed nor refused is confirmed here, on the connection's thread (one point read, as
/// for `authenticate_verified`).
pub(super) fn stands<P: Provider>(
    shared: &Arc<Shared<P>>,
    who: &Principal,
) -> Result<(), AuthRefusal> {
    let Some(remembered) = &who.remembered else {
        return Ok(());
    };
    match remembered.state() {
        Confirmation::Confirmed(_) => Ok(()),
        Confirmation::Refused => Err(AuthRefusal::Rejected),
        Confirmation::Unchecked => {
            let provider = shared.engine.provider();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| provider.confirm(who)))
                .unwrap_or(Err(AuthRefusal::Unavailable))
        }
    }
}

/// What follows a refusal of remembered credentials (the password changed, the user is
/// gone): the full check a new login gets, with its rate limit, its password hash and its
/// audit, on a blocking thread. `Ok` with the principal that check gives (a password set
/// again to the same one), else the reply to send (401, 429, 503).
pub(super) async fn after_refusal<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    authorization: Option<&HeaderValue>,
    refusal: AuthRefusal,
) -> Result<Principal, Box<Reply>> {
    match refusal {
        AuthRefusal::Unavailable => Err(Box::new(unavailable())),
        AuthRefusal::Rejected => {
            check_in_full(shared, peer, authorization.and_then(basic_credentials)).await
        }
    }
}

/// Credentials that could not be checked: the service cannot answer now, which is not a
/// refusal of the credentials.
fn unavailable() -> Reply {
    let mut r = reply(
        StatusCode::SERVICE_UNAVAILABLE,
        TEXT_CONTENT_TYPE,
        "the credentials cannot be checked now (the store is unavailable); retry later\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// A refusal, boxed: a `Reply` is large and refusals are the rare path.
pub(super) fn login_failed<P>(shared: &Shared<P>) -> Box<Reply> {
    shared.metrics.auth_failure();
    Box::new(unauthorized())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let v = HeaderValue::from_static("Basic dXNlcjpwYTpzcw=="); // user:pa:ss
        let (user, password) = basic_credentials(&v).unwrap();
        assert_eq!(user, "user");
        assert_eq!(password.as_str(), "pa:ss");
    }

    #[test]
    fn other_schemes_and_bad_base64_are_not_credentials() {
        assert!(basic_credentials(&HeaderValue::from_static("Negotiate TlRMTVNTUAAB")).is_none());
        assert!(basic_credentials(&HeaderValue::from_static("Basic !!!")).is_none());
        assert!(basic_credentials(&HeaderValue::from_static("Basic dXNlcg==")).is_none()); // no colon
    }
}
