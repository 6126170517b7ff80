//! Recognising media by its first bytes. File names and Content-Type headers lie; magic numbers
//! rarely do.

/// Container or image format recognised from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaFormat {
    Jpeg,
    Png,
    WebP,
    /// Recognised, not decoded (posters are never GIFs in practice; animated GIFs are not films).
    Gif,
    Bmp,
    Tiff,
    /// HEIF/HEIC still images (ISO-BMFF with an image brand).
    Heif,
    Avif,
    /// ISO base media: MP4, M4V, 3GP...
    Mp4,
    /// QuickTime MOV.
    QuickTime,
    Matroska,
    WebM,
    Avi,
    MpegTs,
    MpegPs,
    Flv,
    Ogg,
    /// Windows Media (ASF/WMV).
    Asf,
}

impl MediaFormat {
    /// Short lowercase name, stable (stored with results).
    pub fn name(self) -> &'static str {
        match self {
            MediaFormat::Jpeg => "jpeg",
            MediaFormat::Png => "png",
            MediaFormat::WebP => "webp",
            MediaFormat::Gif => "gif",
            MediaFormat::Bmp => "bmp",
            MediaFormat::Tiff => "tiff",
            MediaFormat::Heif => "heif",
            MediaFormat::Avif => "avif",
            MediaFormat::Mp4 => "mp4",
            MediaFormat::QuickTime => "mov",
            MediaFormat::Matroska => "matroska",
            MediaFormat::WebM => "webm",
            MediaFormat::Avi => "avi",
            MediaFormat::MpegTs => "mpegts",
            MediaFormat::MpegPs => "mpegps",
            MediaFormat::Flv => "flv",
            MediaFormat::Ogg => "ogg",
            MediaFormat::Asf => "asf",
        }
    }

    /// A video container (whether it holds a decodable video stream is the sampler's business).
    pub fn is_video(self) -> bool {
        matches!(
            self,
            MediaFormat::Mp4
                | MediaFormat::QuickTime
                | MediaFormat::Matroska
                | MediaFormat::WebM
                | MediaFormat::Avi
                | MediaFormat::MpegTs
                | MediaFormat::MpegPs
                | MediaFormat::Flv
                | MediaFormat::Ogg
                | MediaFormat::Asf
        )
    }

    /// A still image format, decodable or not.
    pub fn is_image(self) -> bool {
        !self.is_video()
    }

    /// A still image format `decode_image` accepts.
    pub fn is_supported_image(self) -> bool {
        matches!(
            self,
            MediaFormat::Jpeg | MediaFormat::Png | MediaFormat::WebP
        )
    }
}

impl std::fmt::Display for MediaFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How many leading bytes `sniff` may look at; callers reading a file need no more.
pub const SNIFF_LEN: usize = 512;

/// The format of `bytes` (the start of a file is enough: see [`SNIFF_LEN`]), by magic bytes only.
pub fn sniff(bytes: &[u8]) -> Option<MediaFormat> {
    let b = &bytes[..bytes.len().min(SNIFF_LEN)];
    let at = |offset: usize, magic: &[u8]| b.get(offset..offset + magic.len()) == Some(magic);

    if at(0, &[0xFF, 0xD8, 0xFF]) {
        return Some(MediaFormat::Jpeg);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(MediaFormat::Png);
    }
    if at(0, b"RIFF") {
        if at(8, b"WEBP") {
            return Some(MediaFormat::WebP);
        }
        if at(8, b"AVI ") {
            return Some(MediaFormat::Avi);
        }
        return None;
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Some(MediaFormat::Gif);
    }
    // "BM" alone is too weak: also require the reserved fields to be zero.
    if at(0, b"BM") && at(6, &[0, 0, 0, 0]) {
        return Some(MediaFormat::Bmp);
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        return Some(MediaFormat::Tiff);
    }
    if at(4, b"ftyp") {
        return Some(iso_bmff_brand(b));
    }
    // Old QuickTime files start directly with a top-level atom.
    if [b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"]
        .iter()
        .any(|atom| at(4, *atom))
    {
        return Some(MediaFormat::QuickTime);
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        // EBML: the DocType element says which flavour; it sits in the first few dozen bytes.
        let webm = b.windows(4).take(64).any(|w| w == b"webm");
        return Some(if webm {
            MediaFormat::WebM
        } else {
            MediaFormat::Matroska
        });
    }
    if at(0, b"FLV\x01") {
        return Some(MediaFormat::Flv);
    }
    if at(0, b"OggS") {
        return Some(MediaFormat::Ogg);
    }
    if at(
        0,
        &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9],
    ) {
        return Some(MediaFormat::Asf);
    }
    if at(0, &[0x00, 0x00, 0x01, 0xBA]) {
        return Some(MediaFormat::MpegPs);
    }
    if is_transport_stream(b) {
        return Some(MediaFormat::MpegTs);
    }
    None
}

fn iso_bmff_brand(b: &[u8]) -> MediaFormat {
    let major = b.get(8..12).unwrap_or_default();
    // Compatible brands follow the major brand and minor version, up to the box's end.
    let box_len = b
        .get(0..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
        .unwrap_or(0)
        .clamp(16, b.len().max(16));
    let compatible: Vec<&[u8]> = b
        .get(16..box_len.min(b.len()))
        .unwrap_or_default()
        .chunks_exact(4)
        .collect();
    let has = |brand: &[u8]| major == brand || compatible.contains(&brand);
    match major {
        b"qt  " => MediaFormat::QuickTime,
        b"avif" | b"avis" => MediaFormat::Avif,
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs" => {
            MediaFormat::Heif
        }
        b"mif1" | b"msf1" if has(b"avif") => MediaFormat::Avif,
        b"mif1" | b"msf1" => MediaFormat::Heif,
        _ => MediaFormat::Mp4,
    }
}

/// MPEG-TS has no magic number, only a 0x47 sync byte every 188 bytes (192 for M2TS, whose
/// packets start with a 4-byte timestamp). Ask for three packets' worth when the data has them.
fn is_transport_stream(b: &[u8]) -> bool {
    let synced = |start: usize, stride: usize| {
        let positions: Vec<usize> = (0..3)
            .map(|i| start + i * stride)
            .filter(|&p| p < b.len())
            .collect();
        positions.len() >= 2 && positions.iter().all(|&p| b[p] == 0x47)
    };
    synced(0, 188) || synced(4, 192)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(prefix: &[u8]) -> Vec<u8> {
        let mut v = prefix.to_vec();
        v.resize(64, 0x11);
        v
    }

    #[test]
    fn images_by_magic() {
        assert_eq!(
            sniff(&padded(&[0xFF, 0xD8, 0xFF, 0xE0])),
            Some(MediaFormat::Jpeg)
        );
        assert_eq!(sniff(&padded(b"\x89PNG\r\n\x1a\n")), Some(MediaFormat::Png));
        assert_eq!(
            sniff(&padded(b"RIFF\x10\0\0\0WEBPVP8 ")),
            Some(MediaFormat::WebP)
        );
        assert_eq!(sniff(&padded(b"GIF89a")), Some(MediaFormat::Gif));
        assert_eq!(
            sniff(&padded(b"BM\x36\0\0\0\0\0\0\0")),
            Some(MediaFormat::Bmp)
        );
        assert_eq!(sniff(&padded(b"II*\0")), Some(MediaFormat::Tiff));
        assert!(MediaFormat::Jpeg.is_supported_image());
        assert!(!MediaFormat::Gif.is_supported_image());
        assert!(MediaFormat::Gif.is_image());
    }

    #[test]
    fn video_containers_by_magic() {
        let ftyp = |brand: &[u8; 4]| {
            let mut v = vec![0, 0, 0, 24];
            v.extend_from_slice(b"ftyp");
            v.extend_from_slice(brand);
            v.extend_from_slice(&[0, 0, 0, 0]);
            v.extend_from_slice(b"isommp41");
            padded(&v)
        };
        assert_eq!(sniff(&ftyp(b"isom")), Some(MediaFormat::Mp4));
        assert_eq!(sniff(&ftyp(b"qt  ")), Some(MediaFormat::QuickTime));
        assert_eq!(sniff(&ftyp(b"heic")), Some(MediaFormat::Heif));
        assert_eq!(sniff(&ftyp(b"avif")), Some(MediaFormat::Avif));
        assert!(MediaFormat::Mp4.is_video());
        assert!(!MediaFormat::Avif.is_video());

        let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
        webm.extend_from_slice(b"webm");
        assert_eq!(sniff(&padded(&webm)), Some(MediaFormat::WebM));
        let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x88];
        mkv.extend_from_slice(b"matroska");
        assert_eq!(sniff(&padded(&mkv)), Some(MediaFormat::Matroska));

        assert_eq!(
            sniff(&padded(b"RIFF\0\0\0\0AVI LIST")),
            Some(MediaFormat::Avi)
        );
        assert_eq!(sniff(&padded(b"FLV\x01\x05")), Some(MediaFormat::Flv));
        assert_eq!(sniff(&padded(b"OggS\0")), Some(MediaFormat::Ogg));
        assert_eq!(
            sniff(&padded(&[0, 0, 1, 0xBA, 0x44])),
            Some(MediaFormat::MpegPs)
        );
        let mut ts = vec![0u8; 188 * 3];
        ts[0] = 0x47;
        ts[188] = 0x47;
        ts[376] = 0x47;
        assert_eq!(sniff(&ts), Some(MediaFormat::MpegTs));
        assert!(MediaFormat::MpegTs.is_video());
    }

    #[test]
    fn text_empty_and_near_misses_are_unrecognised() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"<html><body>Not an image</body></html>"), None);
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
        assert_eq!(sniff(&padded(b"RIFF\0\0\0\0WAVEfmt ")), None);
        // A lone 0x47 ('G') is not a transport stream.
        assert_eq!(sniff(b"Good morning"), None);
        let mut one_sync = vec![0u8; 400];
        one_sync[0] = 0x47;
        assert_eq!(sniff(&one_sync), None);
    }
}
