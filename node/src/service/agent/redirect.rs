//! Following redirects by hand: ureq would turn a redirected POST into a GET (301–303) or refuse
//! it (307/308), while the original keeps the method and body on every redirect (curl's
//! `CURL_REDIR_POST_ALL`). Cookies set along the way go back to the host that set them, so a
//! login that sets a cookie and redirects works.

/// `location` (a `Location` header) resolved against `base`.
pub fn resolve(base: &str, location: &str) -> String {
    let location = location.trim();
    if location.contains("://") {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net) = location.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if location.starts_with('?') {
        return format!("{scheme}://{authority}{path}{location}");
    }
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{scheme}://{authority}{dir}{location}")
}

/// The host (and port) part of `url`, lowercase: where cookies belong.
pub fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.to_ascii_lowercase()
}

/// Cookies received during one request's redirects, by host (their Domain and Path attributes
/// are not interpreted: they go back to the host that set them only).
#[derive(Debug, Default)]
pub struct Jar {
    cookies: Vec<(String, String, String)>,
}

impl Jar {
    /// Keeps the cookie of a `Set-Cookie` value received from `host`.
    pub fn set(&mut self, host: &str, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let name = name.trim();
        self.cookies.retain(|(h, n, _)| !(h == host && n == name));
        self.cookies
            .push((host.to_owned(), name.to_owned(), value.trim().to_owned()));
    }

    /// The `Cookie` header for a request to `host`, if any cookie belongs there.
    pub fn header(&self, host: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let b = "http://h:8/a/b/c?q=1";
        assert_eq!(resolve(b, "https://o/x"), "https://o/x");
        assert_eq!(resolve(b, "//o/x"), "http://o/x");
        assert_eq!(resolve(b, "/x?y"), "http://h:8/x?y");
        assert_eq!(resolve(b, "d"), "http://h:8/a/b/d");
        assert_eq!(resolve(b, "?z"), "http://h:8/a/b/c?z");
        assert_eq!(resolve("http://h", "d"), "http://h/d");
    }

    #[test]
    fn hosts_and_cookies() {
        assert_eq!(host("http://u:p@Example.COM:80/x?y"), "example.com:80");
        let mut jar = Jar::default();
        jar.set("a", "s=1; Path=/; HttpOnly");
        jar.set("a", "t=2");
        jar.set("a", "s=3");
        jar.set("b", "u=4");
        jar.set("a", "broken");
        assert_eq!(jar.header("a").as_deref(), Some("t=2; s=3"));
        assert_eq!(jar.header("c"), None);
    }
}
