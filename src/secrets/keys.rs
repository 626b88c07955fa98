//! WireGuard keys in memory: zeroized on drop, never printed by `Debug`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// A 32-byte secret: a private key or a preshared key.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A new private key, clamped as `wg genkey` clamps it.
    pub fn generate_private() -> Self {
        let mut bytes = Zeroizing::new(StaticSecret::random().to_bytes());
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        SecretKey(bytes)
    }

    /// A new preshared key (`wg genpsk`): 32 random bytes.
    pub fn generate_preshared() -> Self {
        SecretKey(Zeroizing::new(StaticSecret::random().to_bytes()))
    }

    /// Parses the base64 text of a key file (surrounding whitespace allowed).
    pub fn from_base64(text: &[u8]) -> Option<Self> {
        let trimmed = text.trim_ascii();
        let mut bytes = Zeroizing::new([0u8; 32]);
        // decode_slice into a fixed buffer: no intermediate Vec holding key bytes.
        let mut scratch = Zeroizing::new([0u8; 33]);
        let n = STANDARD.decode_slice(trimmed, scratch.as_mut()).ok()?;
        if n != 32 {
            return None;
        }
        bytes.copy_from_slice(&scratch[..32]);
        Some(SecretKey(bytes))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }

    /// The public key of this private key, base64 as `wg pubkey` prints it.
    pub fn public_key(&self) -> String {
        let secret = StaticSecret::from(*self.0);
        STANDARD.encode(PublicKey::from(&secret).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_matches_wg_pubkey() {
        // `echo yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk= | wg pubkey` (RFC 7748 test-style key).
        let k = SecretKey::from_base64(b"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n").unwrap();
        assert_eq!(
            k.public_key(),
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
        );
    }

    #[test]
    fn generated_keys_are_clamped_and_distinct() {
        let a = SecretKey::generate_private();
        let b = SecretKey::generate_private();
        assert_ne!(a.to_base64(), b.to_base64());
        assert_eq!(a.0[0] & 7, 0);
        assert_eq!(a.0[31] & 0xc0, 0x40);
        assert!(format!("{a:?}").contains("redacted"));
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        assert!(SecretKey::from_base64(b"").is_none());
        assert!(SecretKey::from_base64(b"AAAA").is_none());
        assert!(SecretKey::from_base64(&[b'A'; 44]).is_none());
    }
}
