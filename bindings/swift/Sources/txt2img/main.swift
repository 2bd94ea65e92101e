// swift run txt2img [--weights f32|f16|q8] [--low-memory] MODEL_DIR "a photo of a cat" out.png
// --weights f16 halves the weights' memory, q8 quarters it (default: as the checkpoint stores
// them); --low-memory keeps one network resident at a time.
import SnapFusion
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

let usage = "usage: txt2img [--weights f32|f16|q8] [--low-memory] MODEL_DIR PROMPT OUT.png"
var options = LoadOptions()
var args: [String] = []
var rest = CommandLine.arguments.dropFirst()
while let arg = rest.popFirst() {
    switch arg {
    case "--weights":
        guard let name = rest.popFirst(), let weights = WeightType(name: name) else {
            print("txt2img: --weights takes f32, f16 or q8\n" + usage)
            exit(2)
        }
        options.weights = weights
    case "--low-memory":
        options.lowMemory = true
    default:
        args.append(arg)
    }
}
guard args.count >= 3 else {
    print(usage)
    exit(2)
}
do {
    let pipe = try Pipeline(path: args[0], options: options)  // one thread per core
    let job = try pipe.start(GenerationOptions(prompt: args[1], steps: 8, guidanceScale: 7.5, seed: 0))
    while job.stepsDone < job.stepsTotal {
        let step = try job.step()
        print("step \(step.index)/\(step.total)")
    }
    try job.finish().save(to: args[2])
    print("\(args[2]): weights in memory \(pipe.weightBytes) bytes")
} catch let error as SnapFusionError {
    print("txt2img: \(error)")
    exit(1)
} catch {
    print("txt2img: \(error)")
    exit(1)
}
