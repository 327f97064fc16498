/// Vectorised exp over raw buffers, 8 lanes at a time (AVX2 + FMA).
///
/// exp(x) = 2ⁿ · e^r with n = round(x / ln 2) and |r| ≤ ln2/2; e^r by a degree-6
/// polynomial (relative error below 2e-7 over the reduced range, about 2 ulp). n is rounded
/// with the magic-constant trick (adding 1.5·2²³ leaves n in the low mantissa bits), and
/// inputs are clamped with `replace(with:where:)`: both avoid the out-of-line calls that
/// `rounded()` and `pointwiseMin/Max` compile to, which made an earlier vector exp 40×
/// slower. Inputs below −87.3 give ≈ 0 (a denormal-free tiny value), above 88 give ≈ 1.7e38.
public enum FastMath {
    @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var v = x
        v.replace(with: SIMD8<Float>(repeating: 88.0), where: v .> 88.0)
        v.replace(with: SIMD8<Float>(repeating: -87.3), where: v .< -87.3)
        let magic = SIMD8<Float>(repeating: 12_582_912)   // 1.5 · 2²³
        let shifted = v * 1.442_695_04 + magic
        let n = shifted - magic
        var r = v - n * 0.693_145_75        // ln 2, high part
        r = r - n * 1.428_606_8e-6          // ln 2, low part
        var p = SIMD8<Float>(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((bits &+ 127) &<< 23, to: SIMD8<Float>.self)
        return p * scale
    }

    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        exp(SIMD8<Float>(repeating: x))[0]
    }

    /// dst[i] = exp(src[i] + shift); returns Σ dst[i]. `src` and `dst` may be the same buffer.
    @inline(__always) @discardableResult
    public static func exp(_ src: UnsafePointer<Float>, shift: Float, into dst: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var total = SIMD8<Float>(repeating: 0)
        var i = 0
        let s = SIMD8<Float>(repeating: shift)
        while i + 8 <= count {
            let e = exp(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self) + s)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: e, as: SIMD8<Float>.self)
            total += e
            i += 8
        }
        var tail: Float = 0
        while i < count {
            let e = exp(src[i] + shift)
            dst[i] = e
            tail += e
            i += 1
        }
        return total.sum() + tail
    }

    /// Σ exp(src[i] + shift) without storing.
    @inline(__always)
    public static func expSum(_ src: UnsafePointer<Float>, shift: Float, count: Int) -> Float {
        var total = SIMD8<Float>(repeating: 0)
        var i = 0
        let s = SIMD8<Float>(repeating: shift)
        while i + 8 <= count {
            total += exp(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self) + s)
            i += 8
        }
        var tail: Float = 0
        while i < count { tail += exp(src[i] + shift); i += 1 }
        return total.sum() + tail
    }

    /// max of `count` values.
    @inline(__always)
    public static func maximum(_ src: UnsafePointer<Float>, count: Int) -> Float {
        var m = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self)
            m.replace(with: v, where: v .> m)
            i += 8
        }
        var result = -Float.infinity
        for lane in 0..<8 where m[lane] > result { result = m[lane] }
        while i < count { if src[i] > result { result = src[i] }; i += 1 }
        return result
    }

    /// σ(x) = 1 / (1 + e^{−x}) for 8 lanes.
    @inline(__always)
    public static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        1 / (1 + exp(-x))
    }
}
