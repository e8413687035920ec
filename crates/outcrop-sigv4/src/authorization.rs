use crate::SigV4Error;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The credential scope: `AKID/date/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl CredentialScope {
    /// The scope as it appears in the string to sign (without the access key id).
    pub fn scope_string(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub credential: CredentialScope,
    /// Lower-case header names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    /// Parses the header value; errors carry the texts AWS services answer with.
    pub fn parse(value: &str) -> Result<Self, SigV4Error> {
        let value = value.trim();
        let Some(rest) = value.strip_prefix(ALGORITHM) else {
            let algorithm = value.split_whitespace().next().unwrap_or_default();
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Unsupported algorithm '{algorithm}'."
            )));
        };
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed_headers = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let mut missing = Vec::new();
        for (name, found) in [
            ("Credential", credential.is_some()),
            ("Signature", signature.is_some()),
            ("SignedHeaders", signed_headers.is_some()),
        ] {
            if !found {
                missing.push(format!("Authorization header requires '{name}' parameter."));
            }
        }
        if !missing.is_empty() {
            return Err(SigV4Error::Incomplete(format!(
                "{} Authorization={value}",
                missing.join(" ")
            )));
        }
        let credential = parse_credential(credential.unwrap_or_default())?;
        let signed_headers: Vec<String> = signed_headers
            .unwrap_or_default()
            .split(';')
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        Ok(Authorization {
            credential,
            signed_headers,
            signature: signature.unwrap_or_default().to_owned(),
        })
    }
}

pub(crate) fn parse_credential(value: &str) -> Result<CredentialScope, SigV4Error> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [akid, date, region, service, "aws4_request"] if !akid.is_empty() => Ok(CredentialScope {
            access_key_id: (*akid).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
        }),
        _ => Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped to a valid region, not ''. Credential={value}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 5000, ..Default::default() })]

        /// Whatever a client puts in the header, it is parsed or refused, never a panic.
        #[test]
        fn any_header_parses_or_is_refused(
            value in "(AWS4-HMAC-SHA256 )?(Credential=[A-Za-z0-9/_=-]{0,60})?(, ?SignedHeaders=[a-z;-]{0,30})?(, ?Signature=[0-9a-f]{0,70})?[ ,=/]{0,3}",
            raw in ".{0,80}",
        ) {
            let _ = Authorization::parse(&value);
            let _ = Authorization::parse(&raw);
            let _ = crate::Presigned::parse(&raw);
        }
    }

    #[test]
    fn parses_boto3_header() {
        let a = Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=abcd",
        )
        .unwrap();
        assert_eq!(a.credential.access_key_id, "test");
        assert_eq!(a.credential.region, "us-east-1");
        assert_eq!(a.credential.service, "bedrock");
        assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert_eq!(a.signature, "abcd");
    }

    #[test]
    fn missing_parts_are_named() {
        let err =
            Authorization::parse("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request").unwrap_err();
        let SigV4Error::Incomplete(msg) = err else {
            panic!("{err:?}")
        };
        assert!(msg.contains("requires 'Signature' parameter"), "{msg}");
        assert!(msg.contains("requires 'SignedHeaders' parameter"), "{msg}");
    }

    #[test]
    fn other_algorithms_are_refused() {
        assert!(matches!(
            Authorization::parse("Basic dXNlcjpwYXNz"),
            Err(SigV4Error::Incomplete(_))
        ));
    }

    #[test]
    fn malformed_credential_is_refused() {
        assert!(Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=00"
        )
        .is_err());
    }
}
