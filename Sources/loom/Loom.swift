import ArgumentParser
import Foundation
import LoomData
import LoomDistributed
import LoomTensor

@main
struct Loom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Loom: a large language model pipeline in Swift, from raw text to an aligned chat model.",
        subcommands: [
            PipelineCommand.self,
            ChatCommand.self,
            ServeCommand.self,
            BenchCommand.self,
            PretrainCommand.self,
            SFTCommand.self,
            PPOCommand.self,
            RewardCommand.self,
            GenerateCommand.self,
            EvalCommand.self,
            PrepareCommand.self,
            TokenizeCommand.self,
            TasksCommand.self,
            DPOCommand.self,
            GRPOCommand.self,
            ImportCommand.self,
            QuantizeCommand.self,
            ExportCommand.self,
            MergeCommand.self,
        ]
    )

    /// Runs the command with `SIGPIPE` ignored, so writing to a closed pipe is an `EPIPE`
    /// error the command reports (results) or drops (progress lines), not a silent kill.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        // Started by mpirun: join the job before anything prints, so that only rank 0 does.
        if World.launchedByMPI { _ = World.communicator }
        // A bad LOOM_CPU_KERNELS stops every command here, not the first kernel call.
        _ = KernelLevel.current
        if let error = BF16Implementation.settingError {
            StandardError.writeLine("loom: " + error.message)
            Foundation.exit(2)
        }
        do {
            var command = try parseAsRoot()
            if World.isDistributed && !(command is DataParallelCommand) {
                throw ValidationError("only pretrain, sft, reward, dpo, grpo and ppo run data-parallel under mpirun; run this command as one process")
            }
            try command.run()
            World.finalize()
        } catch {
            if World.isDistributed && exitCode(for: error) != .success {
                // Stop every rank now (MPI_Abort) rather than leave them waiting for this one.
                StandardError.writeLine("error (rank \(World.communicator.rank) of \(World.communicator.size)): " + fullMessage(for: error))
                World.abortJobIfDistributed(exitCode: exitCode(for: error).rawValue)
            }
            World.finalize()
            exit(withError: error)
        }
    }
}

/// A command that trains data-parallel when started by `mpirun -np N` (see `DataParallel`).
protocol DataParallelCommand {}
extension PretrainCommand: DataParallelCommand {}
extension SFTCommand: DataParallelCommand {}
extension DPOCommand: DataParallelCommand {}
extension RewardCommand: DataParallelCommand {}
extension GRPOCommand: DataParallelCommand {}
extension PPOCommand: DataParallelCommand {}
