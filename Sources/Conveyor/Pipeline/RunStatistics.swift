extension PipelineStats {
    /// The per-stage table of a run from its control block's counters: each stage's
    /// replicas summed (the sink's counters follow the workers'). Cost: four relaxed loads
    /// per worker; the counters are each exact, the set is not one atomic snapshot.
    init(plan: RunPlan, control: ControlBlock, seconds: Double, memoryBytes: Int) {
        var rows: [StageStats] = []
        let wall = max(seconds, 1e-9)
        for (n, node) in plan.nodes.enumerated() {
            var items: UInt64 = 0, busy: UInt64 = 0, inWait: UInt64 = 0, outWait: UInt64 = 0
            let mine = n == plan.sink ? [plan.sinkWorker] : plan.workers.indices.filter { plan.workers[$0].node == n }
            for w in mine {
                let c = control.counters(worker: w)
                items += c.items; busy += c.busy; inWait += c.inputWait; outWait += c.outputWait
            }
            rows.append(StageStats(name: node.name, replicas: node.replicas, items: Int(items),
                                   busySeconds: Double(busy) / 1e9, inputWaitSeconds: Double(inWait) / 1e9,
                                   outputWaitSeconds: Double(outWait) / 1e9, itemsPerSecond: Double(items) / wall,
                                   utilization: Double(busy) / 1e9 / wall / Double(node.replicas)))
        }
        self.init(stages: rows, seconds: seconds, sharedMemoryBytes: memoryBytes, mode: plan.mode)
    }
}
