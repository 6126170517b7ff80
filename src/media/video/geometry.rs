//! Picture geometry: output size from pixel aspect ratio, and the quarter turn that shows a
//! stream upright. Pure maths, tested without FFmpeg.

/// Pixel aspect ratios this close to 1 are taken as square. Real anamorphic ratios are at least
/// 8% off (10:11, 12:11, 64:45, 4:3); what comes closer is rounding in an encoder's scaler (854×480
/// scaled to 1920×1080 is written as 1281:1280), where honouring it would resample every frame
/// (1080 rows to 1079: swscale's generic path, 7 ms per 1080p frame instead of 1) to correct a
/// stretch of at most half a percent.
pub const SQUARE_PIXEL_TOLERANCE: f64 = 0.005;

/// Output size for a `width`×`height` picture with pixel aspect ratio `sar` (width/height of a
/// pixel, 1 for square pixels): display aspect kept, long side at most `max_side`, at least 1 px.
pub fn output_size(width: u32, height: u32, sar: f64, max_side: u32) -> (u32, u32) {
    let sar = if sar.is_finite() && sar > 0.0 && (sar - 1.0).abs() > SQUARE_PIXEL_TOLERANCE {
        sar
    } else {
        1.0
    };
    let dw = width as f64 * sar;
    let dh = height as f64;
    let long = dw.max(dh);
    let scale = if long > max_side as f64 {
        max_side as f64 / long
    } else {
        1.0
    };
    let w = (dw * scale).round().max(1.0) as u32;
    let h = (dh * scale).round().max(1.0) as u32;
    (w, h)
}

/// Clockwise rotation (0, 90, 180, 270) that shows a frame upright, from an FFmpeg display
/// matrix (3×3, 16.16 fixed point except the last column). `av_display_rotation_get` gives the
/// counter-clockwise angle as `-atan2(m[1], m[0])`; the clockwise turn is its opposite. An
/// iPhone held upright writes `[0, 1, 0, -1, 0, 0, ...]`: 90° clockwise. Flips are ignored.
pub fn rotation_from_display_matrix(m: &[i32; 9]) -> i32 {
    let a = m[0] as f64 / 65536.0;
    let b = m[1] as f64 / 65536.0;
    let c = m[3] as f64 / 65536.0;
    let d = m[4] as f64 / 65536.0;
    let sx = a.hypot(c);
    let sy = b.hypot(d);
    if sx == 0.0 || sy == 0.0 {
        return 0;
    }
    normalize_rotation((b / sy).atan2(a / sx).to_degrees())
}

/// Snap an angle in degrees to the nearest quarter turn in [0, 360).
pub fn normalize_rotation(degrees: f64) -> i32 {
    if !degrees.is_finite() {
        return 0;
    }
    let quarter = (degrees / 90.0).round() as i64;
    (quarter.rem_euclid(4) * 90) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_keeps_aspect_and_bounds_the_long_side() {
        assert_eq!(output_size(3840, 2160, 1.0, 1920), (1920, 1080));
        assert_eq!(output_size(853, 481, 1.0, 1920), (853, 481));
        assert_eq!(output_size(1080, 1920, 1.0, 960), (540, 960));
        // Anamorphic PAL DVD: 720×576 pixels shown at 16:9.
        assert_eq!(output_size(720, 576, 64.0 / 45.0, 4096), (1024, 576));
        assert_eq!(output_size(704, 480, 10.0 / 11.0, 4096), (640, 480));
        // An encoder's rounding is not a pixel shape: the frame keeps its size.
        assert_eq!(output_size(1920, 1080, 1281.0 / 1280.0, 1920), (1920, 1080));
        assert_eq!(output_size(1920, 1080, 1.006, 4096), (1932, 1080));
        assert_eq!(output_size(10_000, 1, 1.0, 100), (100, 1));
    }

    #[test]
    fn display_matrix_rotation_is_clockwise_and_snapped() {
        let one = 1 << 16;
        // What an iPhone held upright writes (ffprobe: "rotation of -90.00 degrees").
        let phone_upright = [0, one, 0, -one, 0, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&phone_upright), 90);
        // What FFmpeg 5.1 writes for `-metadata:s:v rotate=90` (its player turns it left).
        let ffmpeg51_rotate90 = [0, -one, 0, one, 0, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&ffmpeg51_rotate90), 270);
        let identity = [one, 0, 0, 0, one, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&identity), 0);
        let upside_down = [-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30];
        assert_eq!(rotation_from_display_matrix(&upside_down), 180);
        assert_eq!(normalize_rotation(-90.0), 270);
        assert_eq!(normalize_rotation(89.0), 90);
        assert_eq!(normalize_rotation(f64::NAN), 0);
    }
}
