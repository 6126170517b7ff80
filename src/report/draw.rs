//! Minimal raster drawing for the pictures a person checks: rectangles and a 5×7 bitmap font
//! (upper-case ASCII, digits and a little punctuation). Self-contained so that no font file has
//! to be shipped or found at run time.

use image::{Rgb, RgbImage};

/// Glyph rows, top to bottom; bit 4 is the leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '?' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
        ' ' => [0; 7],
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 6 * scale
}

/// Height in pixels of one line of text at `scale`.
pub fn text_height(scale: u32) -> u32 {
    7 * scale
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, color);
    }
}

/// A filled rectangle, clipped to the image.
pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: u32, h: u32, color: Rgb<u8>) {
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x + w as i64).min(img.width() as i64);
    let y1 = (y + h as i64).min(img.height() as i64);
    for yy in y0..y1 {
        for xx in x0..x1 {
            img.put_pixel(xx as u32, yy as u32, color);
        }
    }
}

/// A rectangle outline `thickness` pixels wide, clipped to the image.
pub fn stroke_rect(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    w: u32,
    h: u32,
    thickness: u32,
    color: Rgb<u8>,
) {
    let t = thickness.max(1);
    fill_rect(img, x, y, w, t, color);
    fill_rect(img, x, y + h as i64 - t as i64, w, t, color);
    fill_rect(img, x, y, t, h, color);
    fill_rect(img, x + w as i64 - t as i64, y, t, h, color);
}

/// Text at (x, y) (top-left), each font pixel drawn as a `scale`×`scale` square.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, color: Rgb<u8>) {
    let s = scale.max(1) as i64;
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        let gx = x + i as i64 * 6 * s;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    for dy in 0..s {
                        for dx in 0..s {
                            put(img, gx + col * s + dx, y + row as i64 * s + dy, color);
                        }
                    }
                }
            }
        }
    }
}

/// Text on a filled label background, kept inside the image.
pub fn draw_label(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    scale: u32,
    fg: Rgb<u8>,
    bg: Rgb<u8>,
) {
    let pad = scale as i64;
    let w = text_width(text, scale) + 2 * scale;
    let h = text_height(scale) + 2 * scale;
    let x = x.clamp(0, (img.width() as i64 - w as i64).max(0));
    let y = y.clamp(0, (img.height() as i64 - h as i64).max(0));
    fill_rect(img, x, y, w, h, bg);
    draw_text(img, x + pad, y + pad, text, scale, fg);
}

/// A distinct, readable colour for person or category number `i`.
pub fn palette(i: usize) -> Rgb<u8> {
    const COLORS: [[u8; 3]; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [0, 128, 128],
        [170, 110, 40],
    ];
    Rgb(COLORS[i % COLORS.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_where_asked_and_clipped_elsewhere() {
        let mut img = RgbImage::new(40, 12);
        draw_text(&mut img, 1, 1, "I", 1, Rgb([255, 0, 0]));
        // 'I' has its top bar from column 1 to 3 of the glyph.
        assert_eq!(img.get_pixel(2, 1), &Rgb([255, 0, 0]));
        assert_eq!(img.get_pixel(0, 0), &Rgb([0, 0, 0]));
        // Far outside: no panic.
        draw_text(&mut img, 35, 8, "WWWW", 3, Rgb([255, 255, 255]));
        stroke_rect(&mut img, -5, -5, 100, 100, 2, Rgb([1, 2, 3]));
    }

    #[test]
    fn label_stays_inside_the_image() {
        let mut img = RgbImage::new(50, 20);
        draw_label(
            &mut img,
            45,
            15,
            "AB",
            1,
            Rgb([255, 255, 255]),
            Rgb([9, 9, 9]),
        );
        assert_eq!(img.get_pixel(49, 19), &Rgb([9, 9, 9]));
        assert_eq!(text_width("AB", 2), 24);
    }
}
