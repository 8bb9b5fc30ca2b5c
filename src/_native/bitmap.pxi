# Bitmap: one image (RGB pixels) or one audio clip (mono float PCM) for a
# projector, as libmtmd's mtmd_bitmap. Its id is the SHA-256 of the source
# bytes, which names the media in chunks (cache keys, prefix reuse).

import hashlib as _hashlib


cdef class Bitmap:
    """An image or audio clip ready for Projector.tokenize."""
    cdef mtmd_bitmap * ptr

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self):
        raise TypeError("use Bitmap.from_rgb, Bitmap.from_audio or Projector.bitmap_from_bytes")

    def __dealloc__(self):
        if self.ptr != NULL:
            mtmd_bitmap_free(self.ptr)
            self.ptr = NULL

    @staticmethod
    cdef Bitmap _wrap(mtmd_bitmap * ptr, str id):
        cdef Bitmap bm = Bitmap.__new__(Bitmap)
        bm.ptr = ptr
        if id is not None:
            bm.id = id
        return bm

    @staticmethod
    def from_rgb(int width, int height, data):
        """An image from raw RGB bytes (row-major, 3 bytes a pixel)."""
        if width <= 0 or height <= 0:
            raise MediaError(f"image size must be positive, got {width}x{height}")
        if width > 65536 or height > 65536:
            raise MediaError(f"image size {width}x{height} is too large")
        cdef const uint8_t[::1] buf = np.ascontiguousarray(np.frombuffer(data, dtype=np.uint8)
                                                           if isinstance(data, (bytes, bytearray, memoryview))
                                                           else np.asarray(data, dtype=np.uint8).reshape(-1))
        cdef size_t need = <size_t>width * <size_t>height * 3
        if <size_t>buf.shape[0] != need:
            raise MediaError(f"{width}x{height} RGB needs {need} bytes, got {buf.shape[0]}")
        cdef mtmd_bitmap * ptr = mtmd_bitmap_init(width, height, &buf[0])
        if ptr == NULL:
            raise MemoryError("mtmd_bitmap_init failed")
        return Bitmap._wrap(ptr, _hashlib.sha256(buf).hexdigest())

    @staticmethod
    def from_audio(samples):
        """An audio clip from mono float32 PCM at the projector's sample rate."""
        cdef const float[::1] pcm = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if pcm.shape[0] == 0:
            raise MediaError("audio has no samples")
        cdef mtmd_bitmap * ptr = mtmd_bitmap_init_from_audio(pcm.shape[0], &pcm[0])
        if ptr == NULL:
            raise MemoryError("mtmd_bitmap_init_from_audio failed")
        return Bitmap._wrap(ptr, _hashlib.sha256(pcm).hexdigest())

    def __repr__(self):
        if self.is_audio:
            return f"Bitmap(audio, n_samples={self.n_bytes // 4})"
        return f"Bitmap(image, {self.nx}x{self.ny})"

    @property
    def is_audio(self):
        return bool(mtmd_bitmap_is_audio(self.ptr))

    @property
    def nx(self):
        """Width in pixels (sample count for audio)."""
        return mtmd_bitmap_get_nx(self.ptr)

    @property
    def ny(self):
        """Height in pixels (1 for audio)."""
        return mtmd_bitmap_get_ny(self.ptr)

    @property
    def n_bytes(self):
        return mtmd_bitmap_get_n_bytes(self.ptr)

    @property
    def id(self):
        """The media's id, by default the SHA-256 (hex) of its bytes."""
        cdef const char * s = mtmd_bitmap_get_id(self.ptr)
        return None if s == NULL or s[0] == 0 else s.decode("utf-8", "replace")

    @id.setter
    def id(self, value):
        cdef bytes b
        if value is None:
            mtmd_bitmap_set_id(self.ptr, NULL)
        else:
            b = str(value).encode()
            mtmd_bitmap_set_id(self.ptr, b)
