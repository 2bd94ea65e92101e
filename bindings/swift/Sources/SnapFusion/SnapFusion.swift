// Swift wrapper of libsnapfusion (over the CSnapFusion module of snapfusion.h).
//
//   let pipe = try Pipeline(path: "models/tiny-sd")   // threads: one per core unless threads: N
//   let image = try pipe.txt2img(GenerationOptions(prompt: "a photo of a cat", steps: 8, seed: 1))
//   try image.save(to: "cat.png")
//
// Objects free their native handle in deinit; a pipeline keeps its context alive and a job
// its pipeline, so deinit order never matters. Failures throw SnapFusionError with the
// library's message. Not compiled here (no Swift toolchain on the CI machine): see README.
import CSnapFusion

// MARK: - Errors

public struct SnapFusionError: Error, CustomStringConvertible {
    public enum Code: UInt32 {
        case invalidArgument = 1, io, badModel, unsupported, outOfMemory, cancelled, backend, badState, internalError,
             notFound
        case unknown = 0xffff_ffff
    }

    public let code: Code
    /// The raw sf_status value (codes newer than this wrapper map to .unknown).
    public let status: UInt32
    /// The library's description of this failure (names the file, tensor or argument).
    public let message: String
    public var description: String { "\(code): \(message)" }
}

@inline(__always)
func check(_ status: sf_status, _ ctx: OpaquePointer? = nil) throws {
    if status == SF_OK { return }
    var message = ctx.map { String(cString: sf_context_last_error($0)) } ?? ""
    if message.isEmpty { message = String(cString: sf_last_error()) }
    if message.isEmpty { message = String(cString: sf_status_string(status)) }
    throw SnapFusionError(code: SnapFusionError.Code(rawValue: status.rawValue) ?? .unknown, status: status.rawValue,
                          message: message)
}

public enum SnapFusion {
    public static var version: String { String(cString: sf_version()) }
    public static var abiVersion: Int { Int(sf_abi_version()) }
    /// True when the loaded library speaks the ABI this wrapper was compiled against.
    public static var abiMatches: Bool { sf_abi_version() == SF_ABI_VERSION }
}

// MARK: - Context

public enum LogLevel: UInt32 { case debug = 0, info, warn, error }

private final class LogBox {
    let handler: (LogLevel, String) -> Void
    init(_ handler: @escaping (LogLevel, String) -> Void) { self.handler = handler }
}

private let logTrampoline: sf_log_fn = { user, level, message in
    guard let user = user, let message = message else { return }
    let box = Unmanaged<LogBox>.fromOpaque(user).takeUnretainedValue()
    box.handler(LogLevel(rawValue: level.rawValue) ?? .error, String(cString: message))
}

/// Threads, logging and error state shared by the pipelines made with it.
public final class Context {
    let ptr: OpaquePointer
    private var logBox: LogBox?  // the C side points at it while set

    public init(threads: Int? = nil) throws {
        var out: OpaquePointer?
        try check(sf_context_create(&out))
        ptr = out!
        if let threads = threads { try setThreads(threads) }
    }

    deinit { sf_context_destroy(ptr) }

    public func setThreads(_ n: Int) throws {
        try check(sf_context_set_int(ptr, SF_PARAM_THREADS, Int64(n)), ptr)
    }

    public var threads: Int {
        var v: Int64 = 0
        _ = sf_context_get_int(ptr, SF_PARAM_THREADS, &v)
        return Int(v)
    }

    /// Receives the library's log (handler must not throw); nil stops logging.
    public func setLogHandler(level: LogLevel = .info, _ handler: ((LogLevel, String) -> Void)?) throws {
        guard let handler = handler else {
            try check(sf_context_set_log_callback(ptr, nil, nil), ptr)
            logBox = nil
            return
        }
        let box = LogBox(handler)
        try check(sf_context_set_log_callback(ptr, logTrampoline, Unmanaged.passUnretained(box).toOpaque()), ptr)
        logBox = box
        try check(sf_context_set_int(ptr, SF_PARAM_LOG_LEVEL, Int64(level.rawValue)), ptr)
    }

    public var lastError: String { String(cString: sf_context_last_error(ptr)) }
}

// MARK: - Params

final class Params {
    let ptr: OpaquePointer

    init() throws {
        var out: OpaquePointer?
        try check(sf_params_create(&out))
        ptr = out!
    }

    deinit { sf_params_destroy(ptr) }

    func set(_ key: sf_param, _ value: Int64?) throws {
        if let v = value { try check(sf_params_set_int(ptr, key, v)) }
    }

    func set(_ key: sf_param, _ value: Double?) throws {
        if let v = value { try check(sf_params_set_float(ptr, key, v)) }
    }

    func set(_ key: sf_param, _ value: String?) throws {
        if let v = value { try check(sf_params_set_string(ptr, key, v)) }
    }

    func set(_ key: sf_param_array, _ values: [Float]?) throws {
        if let v = values { try check(sf_params_set_floats(ptr, key, v, v.count)) }
    }
}

// MARK: - Images

/// An RGB8 image made by the library.
public final class Image {
    let ptr: OpaquePointer

    init(_ ptr: OpaquePointer) { self.ptr = ptr }

    deinit { sf_image_destroy(ptr) }

    /// Reads an 8-bit RGB or RGBA PNG.
    public static func open(_ path: String) throws -> Image {
        var out: OpaquePointer?
        try check(sf_image_read_png(path, &out))
        return Image(out!)
    }

    public var width: Int { Int(sf_image_width(ptr)) }
    public var height: Int { Int(sf_image_height(ptr)) }

    /// Packed RGB8, rows of width*3 bytes, top row first.
    public var pixels: [UInt8] {
        let row = width * 3
        var buf = [UInt8](repeating: 0, count: row * height)
        let status = buf.withUnsafeMutableBufferPointer { sf_image_copy(ptr, $0.baseAddress, $0.count, row, nil) }
        precondition(status == SF_OK, "sf_image_copy failed on a buffer of the right size")
        return buf
    }

    /// The generation parameters in A1111's "parameters" text form ("" if none).
    public var parameters: String { String(cString: sf_image_parameters(ptr)) }

    /// Writes a PNG with the parameters as a "parameters" text chunk.
    public func save(to path: String) throws { try check(sf_image_write_png(ptr, path)) }
}

// MARK: - Generation options

public enum Sampler: UInt32 {
    case `default` = 0, ddim, pndm, euler, eulerAncestral, dpmpp2m, lcm

    public init?(name: String) {
        let v = sf_sampler_from_name(name)
        if v == SF_SAMPLER_DEFAULT && name != "default" { return nil }
        self.init(rawValue: v.rawValue)
    }

    public var name: String? { sf_sampler_name(sf_sampler(rawValue: rawValue)).map { String(cString: $0) } }
}

/// The generation parameters; nil means the library's default.
public struct GenerationOptions {
    public var prompt: String?
    public var negativePrompt: String?
    public var width: Int?
    public var height: Int?
    public var steps: Int?
    public var guidanceScale: Double?
    public var seed: UInt64?
    public var sampler: Sampler?
    public var karrasSigmas: Bool?
    public var clipSkip: Int?
    public var strength: Double?
    public var initImage: Image?
    public var latents: [Float]?
    public var promptEmbeds: [Float]?
    public var negativeEmbeds: [Float]?

    public init(prompt: String? = nil, negativePrompt: String? = nil, width: Int? = nil, height: Int? = nil,
                steps: Int? = nil, guidanceScale: Double? = nil, seed: UInt64? = nil, sampler: Sampler? = nil) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.width = width
        self.height = height
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.seed = seed
        self.sampler = sampler
    }

    func makeParams() throws -> Params {
        let p = try Params()
        try p.set(SF_PARAM_PROMPT, prompt)
        try p.set(SF_PARAM_NEGATIVE_PROMPT, negativePrompt)
        try p.set(SF_PARAM_WIDTH, width.map { Int64($0) })
        try p.set(SF_PARAM_HEIGHT, height.map { Int64($0) })
        try p.set(SF_PARAM_STEPS, steps.map { Int64($0) })
        try p.set(SF_PARAM_GUIDANCE_SCALE, guidanceScale)
        try p.set(SF_PARAM_SEED, seed.map { Int64(bitPattern: $0) })
        try p.set(SF_PARAM_SAMPLER, sampler.map { Int64($0.rawValue) })
        try p.set(SF_PARAM_KARRAS_SIGMAS, karrasSigmas.map { Int64($0 ? 1 : 0) })
        try p.set(SF_PARAM_CLIP_SKIP, clipSkip.map { Int64($0) })
        try p.set(SF_PARAM_STRENGTH, strength)
        try p.set(SF_PARAM_LATENTS, latents)
        try p.set(SF_PARAM_PROMPT_EMBEDS, promptEmbeds)
        try p.set(SF_PARAM_NEGATIVE_EMBEDS, negativeEmbeds)
        if let image = initImage {
            let rgb = image.pixels
            try check(sf_params_set_init_image(p.ptr, rgb, UInt32(image.width), UInt32(image.height), image.width * 3))
        }
        return p
    }
}

// MARK: - Pipelines

private final class ProgressBox {
    let callback: (Int, Int) -> Bool
    init(_ callback: @escaping (Int, Int) -> Bool) { self.callback = callback }
}

private let progressTrampoline: sf_progress_fn = { user, step, total in
    guard let user = user else { return 0 }
    let box = Unmanaged<ProgressBox>.fromOpaque(user).takeUnretainedValue()
    return box.callback(Int(step), Int(total)) ? 1 : 0
}

/// A loaded diffusers model folder.
public final class Pipeline {
    public let context: Context
    let ptr: OpaquePointer

    /// Loads a diffusers folder; without a context the pipeline makes its own.
    public init(path: String, context: Context? = nil, threads: Int? = nil, variant: String? = nil,
                randomWeights: Bool = false) throws {
        let ctx = try context ?? Context()
        if let threads = threads { try ctx.setThreads(threads) }
        let options = try Params()
        try options.set(SF_PARAM_VARIANT, variant)
        if randomWeights { try options.set(SF_PARAM_RANDOM_WEIGHTS, Int64(1)) }
        var out: OpaquePointer?
        try check(sf_pipeline_load(ctx.ptr, path, options.ptr, &out), ctx.ptr)
        self.context = ctx
        self.ptr = out!
    }

    deinit { sf_pipeline_destroy(ptr) }

    private func info(_ key: sf_info) throws -> Int64 {
        var v: Int64 = 0
        try check(sf_pipeline_get_int(ptr, key, &v), context.ptr)
        return v
    }

    public var textTokens: Int { Int((try? info(SF_INFO_TEXT_TOKENS)) ?? 0) }
    public var textHidden: Int { Int((try? info(SF_INFO_TEXT_HIDDEN)) ?? 0) }
    public var latentChannels: Int { Int((try? info(SF_INFO_LATENT_CHANNELS)) ?? 0) }

    /// Text (or JSON) description of the model.
    public func describe(json: Bool = false) throws -> String {
        let format = json ? SF_FORMAT_JSON : SF_FORMAT_TEXT
        var needed = 0
        try check(sf_pipeline_describe(ptr, format, nil, 0, &needed), context.ptr)
        var buf = [CChar](repeating: 0, count: needed)
        try buf.withUnsafeMutableBufferPointer {
            try check(sf_pipeline_describe(ptr, format, $0.baseAddress, $0.count, &needed), context.ptr)
        }
        return String(cString: buf)
    }

    public func tokenize(_ prompt: String) throws -> [Int32] {
        var ids = [Int32](repeating: 0, count: textTokens)
        try ids.withUnsafeMutableBufferPointer {
            try check(sf_tokenize(ptr, prompt, $0.baseAddress, $0.count, nil), context.ptr)
        }
        return ids
    }

    /// Text embedding [tokens, hidden] of one prompt.
    public func encodePrompt(_ prompt: String, clipSkip: Int = 0) throws -> [Float] {
        var out = [Float](repeating: 0, count: textTokens * textHidden)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_encode_prompt(ptr, prompt, Int32(clipSkip), $0.baseAddress, $0.count), context.ptr)
        }
        return out
    }

    /// One UNet evaluation: latents NCHW [batch, C, height, width].
    public func unetPredict(latents: [Float], batch: Int, height: Int, width: Int, timesteps: [Float],
                            textEmbeddings: [Float]) throws -> [Float] {
        var out = [Float](repeating: 0, count: latents.count)
        let tokens = textEmbeddings.count / (batch * textHidden)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_unet_predict(ptr, latents, batch, height, width, timesteps, textEmbeddings, tokens,
                                      $0.baseAddress), context.ptr)
        }
        return out
    }

    /// Latents [batch, C, h, w] in pipeline space -> image [batch, 3, 8h, 8w] in [-1, 1].
    public func decode(latents: [Float], batch: Int, height: Int, width: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: batch * 3 * 64 * height * width)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_decode_latents(ptr, SF_NET_VAE_DECODER, latents, batch, height, width, 0, $0.baseAddress),
                      context.ptr)
        }
        return out
    }

    /// One image. progress(step, total) runs after each step; returning true stops the
    /// run (SnapFusionError .cancelled).
    public func txt2img(_ options: GenerationOptions, progress: ((Int, Int) -> Bool)? = nil) throws -> Image {
        let params = try options.makeParams()
        var out: OpaquePointer?
        let status: sf_status
        if let progress = progress {
            let box = ProgressBox(progress)
            status = withExtendedLifetime(box) {
                sf_generate(ptr, params.ptr, progressTrampoline, Unmanaged.passUnretained(box).toOpaque(), &out)
            }
        } else {
            status = sf_generate(ptr, params.ptr, nil, nil, &out)
        }
        try check(status, context.ptr)
        return Image(out!)
    }

    /// Starts a step-wise generation.
    public func start(_ options: GenerationOptions) throws -> Job {
        let params = try options.makeParams()
        var out: OpaquePointer?
        try check(sf_job_start(ptr, params.ptr, &out), context.ptr)
        let w = options.initImage?.width ?? options.width ?? Int((try? info(SF_INFO_DEFAULT_WIDTH)) ?? 0)
        let h = options.initImage?.height ?? options.height ?? Int((try? info(SF_INFO_DEFAULT_HEIGHT)) ?? 0)
        return Job(pipeline: self, ptr: out!, latentCount: latentChannels * (h / 8) * (w / 8))
    }

    /// The steps of a generation as an AsyncSequence; the last element carries the image.
    /// Cancelling the consuming Task cancels the job before its next step.
    public func steps(_ options: GenerationOptions) -> GenerationSteps {
        GenerationSteps(pipeline: self, options: options)
    }

    /// Thread-safe: cancels whatever the pipeline is running now.
    public func cancel() { sf_pipeline_cancel(ptr) }
}

/// One finished denoising step.
public struct Step {
    public let index: Int
    public let total: Int
    public let job: Job
    /// The decoded image, on the last step only.
    public let image: Image?

    public func latents() throws -> [Float] { try job.latents() }
    public func preview() throws -> Image { try job.preview() }
}

/// A running generation (Pipeline.start).
public final class Job {
    public let pipeline: Pipeline
    let ptr: OpaquePointer
    let latentCount: Int
    public private(set) var image: Image?

    init(pipeline: Pipeline, ptr: OpaquePointer, latentCount: Int) {
        self.pipeline = pipeline
        self.ptr = ptr
        self.latentCount = latentCount
    }

    deinit { sf_job_destroy(ptr) }

    public var stepsDone: Int { Int(sf_job_steps_done(ptr)) }
    public var latentCount: Int { Int(sf_job_latent_count(ptr)) }
    public var stepsTotal: Int { Int(sf_job_steps_total(ptr)) }

    /// Runs one step (the last one also decodes the image).
    public func step() throws -> Step {
        try check(sf_job_step(ptr), pipeline.context.ptr)
        let done = stepsDone, total = stepsTotal
        var finished: Image? = nil
        if done == total { finished = try finish() }
        return Step(index: done, total: total, job: self, image: finished)
    }

    public func latents() throws -> [Float] {
        var out = [Float](repeating: 0, count: latentCount)
        try out.withUnsafeMutableBufferPointer {
            try check(sf_job_latents(ptr, $0.baseAddress, $0.count), pipeline.context.ptr)
        }
        return out
    }

    public func preview() throws -> Image {
        var out: OpaquePointer?
        try check(sf_job_preview(ptr, &out), pipeline.context.ptr)
        return Image(out!)
    }

    /// Runs the remaining steps and decodes.
    public func finish() throws -> Image {
        if let image = image { return image }
        var out: OpaquePointer?
        try check(sf_job_finish(ptr, &out), pipeline.context.ptr)
        let made = Image(out!)
        image = made
        return made
    }

    /// Thread-safe: the running or next step throws .cancelled.
    public func cancel() { sf_job_cancel(ptr) }
}

public struct GenerationSteps: AsyncSequence {
    public typealias Element = Step
    let pipeline: Pipeline
    let options: GenerationOptions

    public struct AsyncIterator: AsyncIteratorProtocol {
        let pipeline: Pipeline
        let options: GenerationOptions
        var job: Job?

        public mutating func next() async throws -> Step? {
            if job == nil { job = try pipeline.start(options) }
            guard let job = job, job.stepsDone < job.stepsTotal else { return nil }
            if Task.isCancelled { job.cancel() }
            await Task.yield()  // steps block: let other tasks of the executor run between them
            return try job.step()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(pipeline: pipeline, options: options, job: nil)
    }
}
