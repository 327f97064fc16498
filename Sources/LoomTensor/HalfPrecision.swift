import CLoomQuant

/// IEEE binary16 conversions, written out so that they round exactly as NumPy's
/// `astype(np.float16)` does on every CPU (the quantized block scales must match llama.cpp's
/// `gguf` package bit for bit).
public enum HalfPrecision {
    /// IEEE binary16 bits of `x`, rounded to nearest even (overflow to infinity).
    public static func bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        var mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1F { return sign | 0x7C00 }
        if halfExponent <= 0 {
            // Subnormal half (or zero): shift the implicit bit in, round to nearest even.
            if halfExponent < -10 { return sign }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - halfExponent)
            var half = mantissa >> shift
            let remainder = mantissa & ((1 << shift) - 1), halfway = UInt32(1) << (shift - 1)
            if remainder > halfway || (remainder == halfway && half & 1 == 1) { half += 1 }
            return sign | UInt16(half)
        }
        var half = UInt32(halfExponent) << 10 | mantissa >> 13
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && half & 1 == 1) { half += 1 }  // may carry into the exponent: correct
        return sign | UInt16(half)
    }

    /// The float a binary16 bit pattern stands for (exact).
    @inline(__always)
    public static func float(_ bits: UInt16) -> Float { loom_half_to_float(bits) }
}
