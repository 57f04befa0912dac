//! Secrets handed to QEMU encrypted with the per-domain master key
//! (`masterKey0`): AES-256-CBC with PKCS#7 padding, base64 encoded, as
//! QEMU's `secret` object expects with `keyid`/`iv`.
//!
//! A small self-contained AES (FIPS-197) because only encryption of a
//! few bytes per domain start is needed.

/// The AES S-box, computed from the multiplicative inverse in GF(2^8)
/// followed by the affine transform.
fn sbox() -> [u8; 256] {
    let mut s = [0u8; 256];
    let (mut p, mut q) = (1u8, 1u8);
    loop {
        // p walks through the multiplicative group by multiplying by 3,
        // q by dividing by 3, so q = p^-1.
        p = p ^ (p << 1) ^ if p & 0x80 != 0 { 0x1b } else { 0 };
        q ^= q << 1;
        q ^= q << 2;
        q ^= q << 4;
        if q & 0x80 != 0 {
            q ^= 0x09;
        }
        let x = q ^ q.rotate_left(1) ^ q.rotate_left(2) ^ q.rotate_left(3) ^ q.rotate_left(4);
        s[usize::from(p)] = x ^ 0x63;
        if p == 1 {
            break;
        }
    }
    s[0] = 0x63;
    s
}

fn xtime(b: u8) -> u8 {
    (b << 1) ^ if b & 0x80 != 0 { 0x1b } else { 0 }
}

/// AES-256 round keys (15 × 16 bytes).
fn expand_key(key: &[u8; 32], sb: &[u8; 256]) -> [[u8; 16]; 15] {
    let mut w = [[0u8; 4]; 60];
    for (i, word) in w.iter_mut().take(8).enumerate() {
        word.copy_from_slice(&key[4 * i..4 * i + 4]);
    }
    let mut rcon = 1u8;
    for i in 8..60 {
        let mut t = w[i - 1];
        if i % 8 == 0 {
            t = [
                sb[usize::from(t[1])] ^ rcon,
                sb[usize::from(t[2])],
                sb[usize::from(t[3])],
                sb[usize::from(t[0])],
            ];
            rcon = xtime(rcon);
        } else if i % 8 == 4 {
            t = t.map(|b| sb[usize::from(b)]);
        }
        for k in 0..4 {
            w[i][k] = w[i - 8][k] ^ t[k];
        }
    }
    let mut rk = [[0u8; 16]; 15];
    for (r, round) in rk.iter_mut().enumerate() {
        for c in 0..4 {
            round[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
        }
    }
    rk
}

fn encrypt_block(block: &mut [u8; 16], rk: &[[u8; 16]; 15], sb: &[u8; 256]) {
    let add = |b: &mut [u8; 16], k: &[u8; 16]| b.iter_mut().zip(k).for_each(|(x, y)| *x ^= y);
    add(block, &rk[0]);
    for (round, key) in rk.iter().enumerate().skip(1) {
        // SubBytes + ShiftRows (column-major state: byte r + 4c).
        let mut s = [0u8; 16];
        for c in 0..4 {
            for r in 0..4 {
                s[r + 4 * c] = sb[usize::from(block[r + 4 * ((c + r) % 4)])];
            }
        }
        if round != 14 {
            for c in 0..4 {
                let col = [s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]];
                let all = col[0] ^ col[1] ^ col[2] ^ col[3];
                for r in 0..4 {
                    s[4 * c + r] = col[r] ^ all ^ xtime(col[r] ^ col[(r + 1) % 4]);
                }
            }
        }
        *block = s;
        add(block, key);
    }
}

/// AES-256-CBC with PKCS#7 padding.
pub fn aes256_cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let sb = sbox();
    let rk = expand_key(key, &sb);
    let pad = 16 - data.len() % 16;
    let mut buf = data.to_vec();
    buf.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(16), pad));
    let mut prev = *iv;
    let mut out = Vec::with_capacity(buf.len());
    for chunk in buf.chunks(16) {
        let mut block = [0u8; 16];
        for (i, b) in chunk.iter().enumerate() {
            block[i] = b ^ prev[i];
        }
        encrypt_block(&mut block, &rk, &sb);
        out.extend_from_slice(&block);
        prev = block;
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips197_aes256_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        let sb = sbox();
        let rk = expand_key(&key, &sb);
        let mut block: [u8; 16] = std::array::from_fn(|i| u8::try_from(i * 0x11).unwrap_or(0));
        encrypt_block(&mut block, &rk, &sb);
        let hex: String = block.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8ea2b7ca516745bfeafc49904b496089");
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
