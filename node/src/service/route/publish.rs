//! The publish spec after `route:`: `[*]name[,name…][?argument][!fail_cb][=return_cb]`.

/// A parsed publish spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `*`: every eligible subscription at once, no offer.
    pub broadcast: bool,
    pub names: Vec<String>,
    pub argument: Option<String>,
    pub fail: Option<String>,
    pub ret: Option<String>,
}

impl Spec {
    /// Parses `key`; each optional part runs to the next `?`, `!` or `=`.
    pub fn parse(key: &str) -> Result<Spec, String> {
        let (broadcast, key) = match key.strip_prefix('*') {
            Some(rest) => (true, rest),
            None => (false, key),
        };
        let cut = key.find(['?', '!', '=']).unwrap_or(key.len());
        let names: Vec<String> = key[..cut]
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err("no subscription name to publish to".into());
        }
        if names.iter().any(|n| n.starts_with('@')) {
            return Err("names starting with '@' are reserved for route:@".into());
        }
        let mut spec = Spec {
            broadcast,
            names,
            argument: None,
            fail: None,
            ret: None,
        };
        let mut rest = &key[cut..];
        while let Some(mark) = rest.chars().next() {
            let body = &rest[1..];
            let end = body.find(['?', '!', '=']).unwrap_or(body.len());
            let part = Some(body[..end].to_owned()).filter(|p| !p.is_empty());
            match mark {
                '?' => spec.argument = part,
                '!' => spec.fail = part,
                _ => spec.ret = part,
            }
            rest = &body[end..];
        }
        Ok(spec)
    }

    /// What subscribers' `route:@` callbacks see: the names and the argument.
    pub fn request_id(&self) -> String {
        let names = self.names.join(",");
        match &self.argument {
            Some(a) => format!("{names}?{a}"),
            None => names,
        }
    }

    /// Whether the subscriber answers the publisher's request itself (it named a return
    /// callback); otherwise route settles it once the message is delivered.
    pub fn passes_answer(&self) -> bool {
        self.ret.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_in_any_order() {
        let s = Spec::parse("*chat,notice?user=1!oops=back").unwrap();
        assert!(s.broadcast);
        assert_eq!(s.names, ["chat", "notice"]);
        // `=` ends the argument: parts run to the next mark (stage-spec §9.1).
        assert_eq!(s.argument.as_deref(), Some("user"));
        assert_eq!(s.ret.as_deref(), Some("back"));
        let s = Spec::parse("login=back!oops?arg").unwrap();
        assert_eq!(
            (s.ret.as_deref(), s.fail.as_deref(), s.argument.as_deref()),
            (Some("back"), Some("oops"), Some("arg"))
        );
        assert_eq!(s.request_id(), "login?arg");
        assert!(!s.broadcast);
        assert!(Spec::parse("?x").is_err());
        assert!(Spec::parse("*").is_err());
    }
}
