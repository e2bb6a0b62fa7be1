//! TOTP seeds as operators copy them (base32 from the broker's QR page),
//! shared by every broker that logs in with a TOTP code.

/// Decodes RFC 4648 base32: case-insensitive, whitespace and `=` ignored
/// wherever they are. `None` for another character, or for a length that
/// leaves a partial byte (1, 3 or 6 characters past a multiple of 8 cannot
/// come from any byte string). Unused low bits of the last character are
/// ignored, as most TOTP implementations do.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    let mut chars = 0usize;
    for ch in text.chars() {
        if ch.is_whitespace() || ch == '=' {
            continue;
        }
        let value = match ch.to_ascii_uppercase() {
            up @ 'A'..='Z' => u32::from(up) - u32::from('A'),
            digit @ '2'..='7' => u32::from(digit) - u32::from('2') + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        chars += 1;
        if bits >= 8 {
            bits -= 8;
            // The mask keeps the byte; the bits below it are still pending.
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if matches!(chars % 8, 1 | 3 | 6) {
        return None;
    }
    Some(out)
}
