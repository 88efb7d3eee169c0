// The readable report of a profile and of an allocation made from it: one self-contained HTML page with
// inline SVG plots (the Pareto frontier, sensitivity heatmaps by block and tensor role, the chosen types)
// and the per-tensor table. The page is well-formed XML, and every plotted mark carries the value it
// shows in `data-*` attributes, so a reader can check the picture against the statistics it came from.
import Foundation
import HessianDist

public struct SensitivityReport: Sendable {
    public var stats: SensitivityStats
    public var allocation: AllocationReport?
    public var title: String
    /// Evaluated files (`hessdist eval --json`) to plot: measured perplexity against file size.
    public var measured: [MeasuredFile] = []

    public struct MeasuredFile: Sendable {
        public var label: String
        public var fileBytes: Int
        public var perplexity: Double
        public var standardError: Double
        public var meanKL: Double?
        public init(label: String, fileBytes: Int, perplexity: Double, standardError: Double, meanKL: Double?) {
            self.label = label
            self.fileBytes = fileBytes
            self.perplexity = perplexity
            self.standardError = standardError
            self.meanKL = meanKL
        }
    }

    public init(stats: SensitivityStats, allocation: AllocationReport? = nil, title: String? = nil) {
        self.stats = stats
        self.allocation = allocation
        self.title = title ?? "HessianDist report: \((stats.model as NSString).lastPathComponent)"
    }

    /// A per-tensor quantity a heatmap shows.
    public struct Measure: Sendable {
        public var id: String
        public var caption: String
        public var values: [String: Double]
    }

    /// The heatmaps this report has data for, in page order.
    public var measures: [Measure] {
        var out: [Measure] = []
        func perWeight(_ pick: (SensitivityStats.Tensor) -> TraceEstimate?) -> [String: Double] {
            var v: [String: Double] = [:]
            for t in stats.tensors { if let e = pick(t) { v[t.name] = e.mean / Double(t.shape.reduce(1, *)) } }
            return v
        }
        let fisher = perWeight(\.fisher), hutch = perWeight(\.hutchinson), sampled = perWeight(\.sampledFisher)
        if !fisher.isEmpty {
            out.append(Measure(id: "fisher", caption: "Empirical Fisher trace per weight, Tr(F_b)/n_b (HAWQ's sensitivity with the Fisher for the Hessian)", values: fisher))
        }
        if !sampled.isEmpty {
            out.append(Measure(id: "sampled-fisher", caption: "Fisher information trace per weight (labels drawn from the model)", values: sampled))
        }
        if !hutch.isEmpty {
            out.append(Measure(id: "hutchinson", caption: "Hutchinson loss-Hessian trace per weight, Tr(H_b)/n_b", values: hutch))
        }
        // An untied embedding has no input Hessian, hence no imatrix: not measured, not 0.
        var input: [String: Double] = [:]
        for (i, t) in stats.tensors.enumerated() where i < stats.imatrix.count && !stats.imatrix[i].isEmpty { input[t.name] = t.inputTrace }
        if !input.isEmpty {
            out.append(Measure(id: "input", caption: "Input energy: the imatrix's sum, the mean ‖x‖² of the tensor's input", values: input))
        }
        if let a = allocation {
            var v: [String: Double] = [:]
            for t in a.tensors { if let c = t.candidates.first(where: { $0.type == t.chosen }) { v[t.name] = c.cost } }
            out.append(Measure(id: "cost", caption: "Predicted damage of the chosen type (\(a.sensitivity)): where the plan spends its budget", values: v))
        }
        return out
    }

    /// Every allocatable tensor at one type, priced like the plan: the uniform files the frontier competes
    /// with (only types every tensor has as a candidate). Bytes: the plan's fixed bytes plus the type's, exact
    /// for GGUF; for GPTQ the checkpoint laid out with that width everywhere (its headers vary with the plan),
    /// unless tensors were pinned.
    public struct UniformPoint: Sendable {
        public var type: String
        public var fileBytes: Int
        public var cost: Double
    }

    public var uniformPoints: [UniformPoint] {
        guard let a = allocation, let first = a.tensors.first else { return [] }
        var out: [UniformPoint] = []
        for c in first.candidates {
            var bytes = a.fixedBytes, cost = 0.0, complete = true
            for t in a.tensors {
                guard let m = t.candidates.first(where: { $0.type == c.type }) else { complete = false; break }
                bytes += m.bytes
                cost += m.cost
            }
            guard complete else { continue }
            if stats.format == .gptq, a.tensors.count == stats.tensors.count, let config = stats.config, let options = a.checkpoint ?? stats.gptq,
               let grids = try? gptqGrids(labels: Dictionary(uniqueKeysWithValues: a.tensors.map { ($0.name, c.type) }),
                                          shapes: Dictionary(uniqueKeysWithValues: stats.tensors.map { ($0.name, $0.shape) }), options: options),
               let exact = try? GPTQCheckpointLayout(config: config, grids: grids, options: options).totalBytes {
                bytes = exact
            }
            out.append(UniformPoint(type: c.type, fileBytes: bytes, cost: cost))
        }
        return out.sorted { ($0.fileBytes, $0.type) < ($1.fileBytes, $1.type) }
    }

    /// Writes the page atomically (a reader never sees half of it).
    public func write(to path: String) throws {
        try Data(html().utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public func html() -> String {
        var page = HTMLPage()
        page.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>\(esc(title))</title>\n<style>\(Self.css)</style></head><body>\n")
        page.raw("<h1>\(esc(title))</h1>\n")
        summary(&page)
        if let a = allocation { allocationSection(a, &page) }
        if !measured.isEmpty { measuredSection(&page) }
        page.raw("<h2>Sensitivity by block</h2>\n<p>Rows are tensor roles, columns transformer blocks; hover a cell for its value. Colours are logarithmic where the values span more than a factor of 10 (grey: zero or negative, which a log scale cannot show).</p>\n")
        let grid = BlockGrid(names: stats.tensors.map(\.name))
        for m in measures {
            page.raw("<figure><figcaption>\(esc(m.caption))</figcaption>\n")
            page.raw(heatmap(id: "heat-\(m.id)", grid: grid, values: m.values))
            page.raw("</figure>\n")
        }
        let blocks = rowBlockGrids
        if !blocks.isEmpty {
            page.raw("<h2>Fisher trace by output rows</h2>\n<p>Profiled with --fisher-row-block: each tensor's trace split over runs of its output rows (with the head size as the run, one cell per attention head), per weight. Rows are transformer blocks, columns the runs of rows.</p>\n")
            for (role, grid, values) in blocks {
                page.raw("<figure><figcaption>\(esc(role))</figcaption>\n")
                page.raw(heatmap(id: "rows-\(role)", grid: grid, values: values))
                page.raw("</figure>\n")
            }
        }
        if let a = allocation {
            page.raw("<h2>Chosen types</h2>\n")
            page.raw(typeMap(a, grid: grid))
        }
        tensorTable(&page)
        page.raw("</body></html>\n")
        return page.text
    }

    /// Per role, the row-block Fisher traces per weight: a grid of blocks (rows) by runs of output rows
    /// (columns), cells named `TENSOR[rows a..<b]`.
    var rowBlockGrids: [(String, BlockGrid, [String: Double])] {
        var order: [String] = [], grids: [String: BlockGrid] = [:], values: [String: [String: Double]] = [:]
        for t in stats.tensors {
            guard let runs = t.fisherRowBlocks, !runs.isEmpty, t.shape.count == 2 else { continue }
            let parts = t.name.split(separator: ".").map(String.init)
            let layer = parts.count >= 3 && parts[0] == "blk" ? Int(parts[1]) : nil
            let role = layer == nil ? t.name : parts[2]
            if grids[role] == nil { order.append(role); grids[role] = BlockGrid(names: []) }
            var row = BlockGrid.Row(label: layer.map(String.init) ?? t.name, cells: [])
            for (k, e) in runs.enumerated() {
                let r = e.rows ?? 0..<t.shape[0]
                let name = "\(t.name)[rows \(r.lowerBound)..<\(r.upperBound)]"
                row.cells.append(.init(name: name, column: k))
                values[role, default: [:]][name] = e.mean / Double(r.count * t.shape[1])
            }
            grids[role]!.rows.append(row)
            grids[role]!.columns = max(grids[role]!.columns, runs.count)
            grids[role]!.hasBlocks = true
        }
        return order.map { ($0, grids[$0]!, values[$0]!) }
    }

    // MARK: sections

    private func summary(_ page: inout HTMLPage) {
        let s = stats, c = s.cost
        var rows: [(String, String)] = [
            ("model", s.model), ("calibration", "\(s.calibration) (\(s.seqlen) tokens per sequence)"),
            ("parameters", grouped(s.parameters)), ("output format", s.format.rawValue),
            ("allocatable tensors", "\(s.tensors.count)"),
            ("fixed bytes (header, norms)", grouped(s.fixedBytes)),
        ]
        if let n = s.fisherSamples { rows.append(("Fisher sequences", "\(n)")) }
        if let n = s.hutchinsonSamples { rows.append(("Hutchinson sequences per probe", "\(n)")) }
        var cost = String(format: "%.1f s in all; one forward of one sequence %.3f s", c.totalSeconds, c.forwardSeconds)
        if let f = c.fisherSecondsPerSequence { cost += String(format: "; Fisher %.2f s per sequence (%.1f forwards)", f, f / c.forwardSeconds) }
        if let h = c.hutchinsonSecondsPerProbe { cost += String(format: "; Hutchinson %.2f s per probe", h) }
        cost += String(format: "; layer Hessians and pricing %.1f s", c.layerPassSeconds)
        rows.append(("profile cost", cost))
        if let t = c.topology { rows.append(("topology", t)) }
        page.raw("<table class=\"summary\">\n")
        for (k, v) in rows { page.raw("<tr><th>\(esc(k))</th><td>\(esc(v))</td></tr>\n") }
        page.raw("</table>\n")
    }

    private func allocationSection(_ a: AllocationReport, _ page: inout HTMLPage) {
        let params = Double(stats.parameters)
        page.raw("<h2>Allocation</h2>\n")
        let bpw = Double(a.plannedFileBytes * 8) / params
        page.raw("<p id=\"plan\" data-bytes=\"\(a.plannedFileBytes)\" data-cost=\"\(exact(a.totalCost))\">Sensitivity <b>\(esc(a.sensitivity))</b>\(a.errors.map { " (\(esc($0)) errors)" } ?? ""), budget \(grouped(a.budgetBytes)) bytes (\(String(format: "%.3f", a.targetBitsPerWeight)) bits/weight): plan \(grouped(a.plannedFileBytes)) bytes, \(String(format: "%.3f", bpw)) bits/weight, predicted cost \(num(a.totalCost)), \(a.optimal ? "optimal" : "lower bound \(num(a.lowerBound))").</p>\n")
        var counts: [String: Int] = [:]
        for t in a.tensors { counts[t.chosen, default: 0] += 1 }
        page.raw("<p>Types chosen: \(esc(counts.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")))")
        if !a.ties.isEmpty { page.raw("; \(a.ties.count) tie groups (tensors a runtime fuses share a type)") }
        page.raw(".</p>\n<figure><figcaption>Pareto frontier: the least predicted cost at each file size (the solver's optimum per budget), the uniform files priced the same way, and the plan</figcaption>\n")
        page.raw(frontierPlot(a))
        page.raw("</figure>\n<table class=\"frontier\"><tr><th>budget bits/weight</th><th>file bytes</th><th>bits/weight</th><th>predicted cost</th><th>types</th></tr>\n")
        for p in a.frontier {
            let mix = p.types.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            page.raw("<tr><td>\(String(format: "%.3f", p.bitsPerWeight))</td><td>\(grouped(p.fileBytes))</td><td>\(String(format: "%.3f", Double(p.fileBytes * 8) / params))</td><td>\(num(p.cost))</td><td>\(esc(mix))</td></tr>\n")
        }
        page.raw("</table>\n")
    }

    private func measuredSection(_ page: inout HTMLPage) {
        let params = Double(stats.parameters)
        let files = measured.sorted { ($0.fileBytes, $0.label) < ($1.fileBytes, $1.label) }
        page.raw("<h2>Measured</h2>\n<figure><figcaption>Perplexity (± one standard error) against file bits per weight, as `hessdist eval` measured the files</figcaption>\n")
        let frame = PlotFrame(width: 680, height: 380, left: 78, right: 24, top: 16, bottom: 48)
        let xAxis = LinearAxis(values: files.map { Double($0.fileBytes * 8) / params })
        let yAxis = LinearAxis(values: files.flatMap { [$0.perplexity - $0.standardError, $0.perplexity + $0.standardError] })
        var svg = "<svg id=\"measured\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(px(frame.width))\" height=\"\(px(frame.height))\" viewBox=\"0 0 \(px(frame.width)) \(px(frame.height))\" data-yscale=\"linear\">\n"
        svg += frame.axes(x: xAxis, y: yAxis, xLabel: "file bits per weight (every byte of the output)", yLabel: "perplexity")
        var labels: [(Double, Double, Double)] = []
        for f in files {
            let bpw = Double(f.fileBytes * 8) / params
            let cx = frame.x(xAxis.unit(bpw)), cy = frame.y(yAxis.unit(f.perplexity))
            let lo = frame.y(yAxis.unit(f.perplexity - f.standardError)), hi = frame.y(yAxis.unit(f.perplexity + f.standardError))
            svg += "<line class=\"error-bar\" x1=\"\(px(cx))\" y1=\"\(px(lo))\" x2=\"\(px(cx))\" y2=\"\(px(hi))\" stroke=\"#999\"/>\n"
            svg += "<circle class=\"measured-point\" cx=\"\(px(cx))\" cy=\"\(px(cy))\" r=\"3.5\" fill=\"#21918c\" data-label=\"\(esc(f.label))\" data-bytes=\"\(f.fileBytes)\" data-bpw=\"\(exact(bpw))\" data-ppl=\"\(exact(f.perplexity))\" data-se=\"\(exact(f.standardError))\"><title>\(esc(f.label)): \(String(format: "%.3f", bpw)) bits/weight, PPL \(String(format: "%.4f ± %.4f", f.perplexity, f.standardError))</title></circle>\n"
            // Right of the point in the left half, left of it in the right half: names stay inside the plot.
            let right = cx < frame.width / 2, width = 5.2 * Double(f.label.count)
            let span = right ? (cx + 6, cx + 6 + width) : (cx - 6 - width, cx - 6)
            let ly = labelY(cy + 3, span: span, placed: labels, h: 10, top: frame.top + 8, bottom: frame.height - frame.bottom - 2)
            labels.append((span.0, span.1, ly))
            svg += "<text x=\"\(px(right ? cx + 6 : cx - 6))\" y=\"\(px(ly))\" font-size=\"9\" text-anchor=\"\(right ? "start" : "end")\">\(esc(f.label))</text>\n"
        }
        page.raw(svg + "</svg>\n</figure>\n")
        page.raw("<table class=\"measured\"><tr><th>file</th><th>bytes</th><th>bits/weight</th><th>PPL ± se</th><th>mean KL from the original</th></tr>\n")
        for f in files {
            page.raw("<tr><td>\(esc(f.label))</td><td>\(grouped(f.fileBytes))</td><td>\(String(format: "%.3f", Double(f.fileBytes * 8) / params))</td><td>\(String(format: "%.4f ± %.4f", f.perplexity, f.standardError))</td><td>\(f.meanKL.map { String(format: "%.5f", $0) } ?? "–")</td></tr>\n")
        }
        page.raw("</table>\n")
    }

    private func tensorTable(_ page: inout HTMLPage) {
        let chosen = Dictionary(uniqueKeysWithValues: (allocation?.tensors ?? []).map { ($0.name, $0) })
        let eigen = stats.tensors.contains { $0.topEigenvalue != nil }
        page.raw("<h2>Tensors</h2>\n<table class=\"tensors\"><tr><th>tensor</th><th>shape</th><th>Σ imatrix</th><th>Fisher tr ± se</th><th>Hutchinson tr ± se</th>")
        if eigen { page.raw("<th>top eigenvalue (power iterations)</th>") }
        if allocation != nil { page.raw("<th>chosen</th><th>bytes</th><th>predicted cost of each candidate</th>") }
        page.raw("</tr>\n")
        func tr(_ e: TraceEstimate?) -> String { e.map { "\(num($0.mean)) ± \(num($0.standardError))" } ?? "–" }
        for t in stats.tensors {
            page.raw("<tr><td>\(esc(t.name))</td><td>\(t.shape.map(String.init).joined(separator: "×"))</td><td>\(num(t.inputTrace))</td><td>\(tr(t.fisher))</td><td>\(tr(t.hutchinson))</td>")
            if eigen { page.raw("<td>\(t.topEigenvalue.map { "\(num($0)) (\(t.eigenIterations ?? 0))" } ?? "–")</td>") }
            if let a = chosen[t.name], let c = a.candidates.first(where: { $0.type == a.chosen }) {
                let all = a.candidates.map { "\($0.type) \(num($0.cost))" }.joined(separator: ", ")
                page.raw("<td>\(esc(a.chosen))</td><td>\(grouped(c.bytes))</td><td>\(esc(all))</td>")
            } else if allocation != nil {
                page.raw("<td>pinned</td><td></td><td></td>")
            }
            page.raw("</tr>\n")
        }
        page.raw("</table>\n")
    }

    // MARK: plots

    private func frontierPlot(_ a: AllocationReport) -> String {
        let params = Double(stats.parameters)
        func x(_ bytes: Int) -> Double { Double(bytes * 8) / params }
        let uniform = uniformPoints
        let xs = a.frontier.map { x($0.fileBytes) } + uniform.map { x($0.fileBytes) } + [x(a.plannedFileBytes)]
        let ys = a.frontier.map(\.cost) + uniform.map(\.cost) + [a.totalCost]
        let frame = PlotFrame(width: 680, height: 380, left: 78, right: 24, top: 16, bottom: 48)
        let xAxis = LinearAxis(values: xs)
        let yAxis = ValueAxis(values: ys)
        var svg = "<svg id=\"frontier\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(px(frame.width))\" height=\"\(px(frame.height))\" viewBox=\"0 0 \(px(frame.width)) \(px(frame.height))\" data-yscale=\"\(yAxis.log ? "log" : "linear")\">\n"
        svg += frame.axes(x: xAxis, y: yAxis, xLabel: "file bits per weight (every byte of the output)", yLabel: "predicted cost (\(a.sensitivity))")
        let pts = a.frontier.sorted { $0.fileBytes < $1.fileBytes }
        let line = pts.map { "\(px(frame.x(xAxis.unit(x($0.fileBytes))))),\(px(frame.y(yAxis.unit($0.cost))))" }.joined(separator: " ")
        svg += "<polyline class=\"frontier-line\" points=\"\(line)\" fill=\"none\" stroke=\"#3b528b\" stroke-width=\"1.5\"/>\n"
        for p in pts {
            let mix = p.types.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            svg += "<circle class=\"frontier-point\(p.cost > 0 ? "" : " zero")\" cx=\"\(px(frame.x(xAxis.unit(x(p.fileBytes)))))\" cy=\"\(px(frame.y(yAxis.unit(p.cost))))\" r=\"3.5\" fill=\"#3b528b\" data-bytes=\"\(p.fileBytes)\" data-bpw=\"\(exact(x(p.fileBytes)))\" data-cost=\"\(exact(p.cost))\"><title>\(String(format: "%.3f", x(p.fileBytes))) bits/weight: cost \(num(p.cost)); \(esc(mix))</title></circle>\n"
        }
        var labels: [(Double, Double, Double)] = []
        for u in uniform {
            let cx = frame.x(xAxis.unit(x(u.fileBytes))), cy = frame.y(yAxis.unit(u.cost))
            // Types of one size and similar cost would print over each other.
            let span = (cx + 6, cx + 6 + 6 * Double(u.type.count))
            let ly = labelY(cy - 5, span: span, placed: labels, h: 11, top: frame.top + 8, bottom: frame.height - frame.bottom - 2)
            labels.append((span.0, span.1, ly))
            svg += "<rect class=\"uniform-point\(u.cost > 0 ? "" : " zero")\" x=\"\(px(cx - 3.5))\" y=\"\(px(cy - 3.5))\" width=\"7\" height=\"7\" fill=\"#fde725\" stroke=\"#444\" data-type=\"\(esc(u.type))\" data-bytes=\"\(u.fileBytes)\" data-bpw=\"\(exact(x(u.fileBytes)))\" data-cost=\"\(exact(u.cost))\"><title>uniform \(esc(u.type)): \(String(format: "%.3f", x(u.fileBytes))) bits/weight, cost \(num(u.cost))</title></rect>\n"
            svg += "<text class=\"uniform-label\" x=\"\(px(cx + 6))\" y=\"\(px(ly))\" font-size=\"10\">\(esc(u.type))</text>\n"
        }
        let cx = frame.x(xAxis.unit(x(a.plannedFileBytes))), cy = frame.y(yAxis.unit(a.totalCost))
        svg += "<circle class=\"plan-point\(a.totalCost > 0 ? "" : " zero")\" cx=\"\(px(cx))\" cy=\"\(px(cy))\" r=\"7\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" data-bytes=\"\(a.plannedFileBytes)\" data-bpw=\"\(exact(x(a.plannedFileBytes)))\" data-cost=\"\(exact(a.totalCost))\"><title>the plan: \(String(format: "%.3f", x(a.plannedFileBytes))) bits/weight, cost \(num(a.totalCost))</title></circle>\n"
        svg += "<text x=\"\(px(cx + 9))\" y=\"\(px(cy + 14))\" font-size=\"11\" fill=\"#d62728\">plan</text>\n"
        return svg + "</svg>\n"
    }

    private func heatmap(id: String, grid: BlockGrid, values: [String: Double]) -> String {
        let scale = ColorScale(values: Array(values.values))
        let cw = grid.cellWidth, ch = BlockGrid.cellHeight, left = BlockGrid.left, top = BlockGrid.top
        let steps = 40, barWidth = 240.0
        let width = max(left + cw * Double(max(grid.columns, 1)) + 16, left + barWidth + 40)
        let legendTop = top + ch * Double(grid.rows.count) + 14, height = legendTop + 40
        var svg = "<svg id=\"\(esc(id))\" class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(px(width))\" height=\"\(px(height))\" viewBox=\"0 0 \(px(width)) \(px(height))\" data-scale=\"\(scale.log ? "log" : "linear")\">\n"
        svg += grid.svg { cell in
            let v = values[cell.name]
            return (fill: v.map(scale.color) ?? "#ffffff", attributes: v.map { " data-value=\"\(exact($0))\"" } ?? "",
                    title: v.map { "\(cell.name): \(num($0))" } ?? "\(cell.name): not measured")
        }
        // The legend: the palette from the smallest shown value to the largest.
        for i in 0..<steps {
            svg += "<rect class=\"legend\" x=\"\(px(left + barWidth * Double(i) / Double(steps)))\" y=\"\(px(legendTop))\" width=\"\(px(barWidth / Double(steps) + 0.5))\" height=\"10\" fill=\"\(ColorScale.palette(Double(i) / Double(steps - 1)))\"/>\n"
        }
        if let (lo, hi) = scale.range {
            svg += "<text class=\"legend-min\" x=\"\(px(left))\" y=\"\(px(legendTop + 24))\" font-size=\"10\" data-value=\"\(exact(lo))\">\(num(lo))</text>\n"
            svg += "<text class=\"legend-max\" x=\"\(px(left + barWidth))\" y=\"\(px(legendTop + 24))\" font-size=\"10\" text-anchor=\"end\" data-value=\"\(exact(hi))\">\(num(hi))</text>\n"
        }
        return svg + "</svg>\n"
    }

    private func typeMap(_ a: AllocationReport, grid: BlockGrid) -> String {
        // A type's colour is its place by bits per weight among the types chosen (the table of types below).
        var bitsOf: [String: Double] = [:]
        let shapes = Dictionary(uniqueKeysWithValues: stats.tensors.map { ($0.name, $0.shape) })
        var chosen: [String: String] = [:]
        for t in a.tensors {
            chosen[t.name] = t.chosen
            if let c = t.candidates.first(where: { $0.type == t.chosen }), let s = shapes[t.name] {
                bitsOf[t.chosen] = min(bitsOf[t.chosen] ?? .infinity, Double(c.bytes * 8) / Double(s.reduce(1, *)))
            }
        }
        let order = bitsOf.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map(\.key)
        func color(_ type: String) -> String {
            guard let i = order.firstIndex(of: type) else { return "#ffffff" }
            return ColorScale.palette(order.count > 1 ? Double(i) / Double(order.count - 1) : 0.5)
        }
        let cw = grid.cellWidth, ch = BlockGrid.cellHeight, left = BlockGrid.left, top = BlockGrid.top
        let perRow = 4, entry = 140.0
        let width = max(left + cw * Double(max(grid.columns, 1)) + 16, left + entry * Double(perRow))
        let legendTop = top + ch * Double(grid.rows.count) + 14
        let height = legendTop + 18 * Double((order.count + perRow - 1) / perRow) + 8
        var svg = "<svg id=\"types\" class=\"typemap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(px(width))\" height=\"\(px(height))\" viewBox=\"0 0 \(px(width)) \(px(height))\">\n"
        svg += grid.svg { cell in
            let type = chosen[cell.name] ?? "pinned"
            return (fill: color(type), attributes: " data-type=\"\(esc(type))\"", title: "\(cell.name): \(type)")
        }
        for (i, type) in order.enumerated() {
            let x = left + Double(i % perRow) * entry, y = legendTop + 18 * Double(i / perRow)
            svg += "<rect class=\"legend\" x=\"\(px(x))\" y=\"\(px(y))\" width=\"12\" height=\"12\" fill=\"\(color(type))\" data-type=\"\(esc(type))\"/>\n"
            svg += "<text x=\"\(px(x + 16))\" y=\"\(px(y + 10))\" font-size=\"11\">\(esc(type)) (\(String(format: "%.2f", bitsOf[type]!)) b/w)</text>\n"
        }
        return svg + "</svg>\n"
    }

    static let css = """
    body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}table{border-collapse:collapse;font-size:12px;margin:.5em 0}\
    td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}figure{margin:1em 0}figcaption{font-size:13px;margin-bottom:4px}\
    svg text{font-family:sans-serif}
    """
}

// MARK: layout

/// Tensors laid out as a grid: one row per role of the transformer blocks (`blk.N.ROLE.weight`), one column
/// per block; any other tensor (the embedding, the output head) gets a row of its own.
struct BlockGrid {
    struct Cell { var name: String; var column: Int }
    struct Row { var label: String; var cells: [Cell] }
    var rows: [Row] = []
    var columns = 1
    var hasBlocks = false

    init(names: [String]) {
        var roles: [String] = [], byRole: [String: [Cell]] = [:], others: [Row] = []
        for name in names {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            if parts.count >= 3, parts[0] == "blk", let l = Int(parts[1]) {
                var role = parts[2...].joined(separator: ".")
                if role.hasSuffix(".weight") { role.removeLast(7) }
                if byRole[role] == nil { roles.append(role) }
                byRole[role, default: []].append(Cell(name: name, column: l))
                columns = max(columns, l + 1)
                hasBlocks = true
            } else {
                others.append(Row(label: name.hasSuffix(".weight") ? String(name.dropLast(7)) : name, cells: [Cell(name: name, column: 0)]))
            }
        }
        rows = roles.map { Row(label: $0, cells: byRole[$0]!) } + others
    }

    var cellWidth: Double { max(12, min(32, 640 / Double(columns))) }
    /// Where the cells start (room for the block numbers above and the row labels left) and their height.
    static let left = 118.0, top = 22.0, cellHeight = 16.0

    /// The grid's SVG body: block numbers, row labels, and one `cell` rect per tensor with the fill, extra
    /// attributes and tooltip `mark` gives it.
    func svg(_ mark: (Cell) -> (fill: String, attributes: String, title: String)) -> String {
        let cw = cellWidth, ch = Self.cellHeight, left = Self.left, top = Self.top
        var s = ""
        for c in stride(from: 0, to: columns, by: columns > 12 ? 5 : 1) where hasBlocks {
            s += "<text x=\"\(px(left + cw * (Double(c) + 0.5)))\" y=\"\(px(top - 6))\" font-size=\"10\" text-anchor=\"middle\">\(c)</text>\n"
        }
        for (r, row) in rows.enumerated() {
            let y = top + ch * Double(r)
            s += "<text x=\"\(px(left - 6))\" y=\"\(px(y + 12))\" font-size=\"11\" text-anchor=\"end\">\(esc(row.label))</text>\n"
            for cell in row.cells {
                let m = mark(cell)
                s += "<rect class=\"cell\" x=\"\(px(left + cw * Double(cell.column)))\" y=\"\(px(y))\" width=\"\(px(cw - 1))\" height=\"\(px(ch - 1))\" fill=\"\(m.fill)\" data-tensor=\"\(esc(cell.name))\"\(m.attributes)><title>\(esc(m.title))</title></rect>\n"
            }
        }
        return s
    }
}

/// The plot area of an SVG chart and its axes, in pixels.
struct PlotFrame {
    var width: Double, height: Double, left: Double, right: Double, top: Double, bottom: Double
    func x(_ u: Double) -> Double { left + u * (width - left - right) }
    func y(_ u: Double) -> Double { height - bottom - u * (height - top - bottom) }

    func axes(x xa: LinearAxis, y ya: some PlotAxis, xLabel: String, yLabel: String) -> String {
        var s = "<rect class=\"plot-area\" x=\"\(px(left))\" y=\"\(px(top))\" width=\"\(px(width - left - right))\" height=\"\(px(height - top - bottom))\" fill=\"none\" stroke=\"#999\"/>\n"
        for (t, label) in zip(xa.ticks, tickLabels(xa.ticks, log: false)) {
            let X = x(xa.unit(t))
            s += "<line class=\"x-tick\" x1=\"\(px(X))\" y1=\"\(px(height - bottom))\" x2=\"\(px(X))\" y2=\"\(px(top))\" stroke=\"#eee\" data-value=\"\(exact(t))\"/>\n"
            s += "<text x=\"\(px(X))\" y=\"\(px(height - bottom + 14))\" font-size=\"10\" text-anchor=\"middle\">\(label)</text>\n"
        }
        for (t, label) in zip(ya.ticks, tickLabels(ya.ticks, log: ya.log)) {
            let Y = y(ya.unit(t))
            s += "<line class=\"y-tick\" x1=\"\(px(left))\" y1=\"\(px(Y))\" x2=\"\(px(width - right))\" y2=\"\(px(Y))\" stroke=\"#eee\" data-value=\"\(exact(t))\"/>\n"
            s += "<text x=\"\(px(left - 4))\" y=\"\(px(Y + 3))\" font-size=\"10\" text-anchor=\"end\">\(label)</text>\n"
        }
        s += "<text x=\"\(px((left + width - right) / 2))\" y=\"\(px(height - 10))\" font-size=\"12\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        s += "<text transform=\"translate(14,\(px((top + height - bottom) / 2))) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">\(esc(yLabel))\(ya.log ? " (log scale)" : "")</text>\n"
        return s
    }
}

protocol PlotAxis {
    var log: Bool { get }
    var ticks: [Double] { get }
    /// A value's place along the axis, 0 at its start and 1 at its end.
    func unit(_ v: Double) -> Double
}

/// A linear axis over the values' range, padded by 5 %, with ticks at 1, 2 or 5 × 10^k steps.
struct LinearAxis: PlotAxis {
    var log: Bool { false }
    var lo: Double, hi: Double
    init(values: [Double]) {
        let a = values.min() ?? 0, b = values.max() ?? 1
        let pad = b > a ? 0.05 * (b - a) : max(abs(a) * 0.05, 0.5)
        lo = a - pad
        hi = b + pad
    }
    func unit(_ v: Double) -> Double { (v - lo) / (hi - lo) }
    var ticks: [Double] { niceTicks(lo, hi) }
}

/// The cost axis: logarithmic when every positive value spans more than 20× (zeros sit on the floor, a
/// third of the smallest positive value), else linear from 0.
struct ValueAxis: PlotAxis {
    var log: Bool
    var lo: Double, hi: Double
    init(values: [Double]) {
        let positive = values.filter { $0 > 0 }
        let minP = positive.min() ?? 1, maxP = positive.max() ?? 1
        log = !positive.isEmpty && maxP / minP > 20 && values.allSatisfy { $0 >= 0 }
        if log {
            lo = Foundation.log10(minP / 3)
            hi = Foundation.log10(maxP) + 0.05 * (Foundation.log10(maxP) - Foundation.log10(minP / 3))
        } else {
            lo = min(0, values.min() ?? 0)
            let top = values.max() ?? 0
            hi = top > lo ? top + 0.05 * (top - lo) : lo + 1
        }
    }
    func unit(_ v: Double) -> Double {
        guard log else { return (v - lo) / (hi - lo) }
        return v > 0 ? (max(Foundation.log10(v), lo) - lo) / (hi - lo) : 0
    }
    var ticks: [Double] {
        guard log else { return niceTicks(lo, hi) }
        let first = Int(Foundation.ceil(lo)), last = Int(Foundation.floor(hi))
        if last - first >= 1 { return (first...last).map { Foundation.pow(10, Double($0)) } }
        // Less than a decade apart: 1, 2, 5 within it.
        return (first - 1...last).flatMap { e in [1.0, 2, 5].map { $0 * Foundation.pow(10, Double(e)) } }
            .filter { Foundation.log10($0) >= lo && Foundation.log10($0) <= hi }
    }
}

func niceTicks(_ lo: Double, _ hi: Double) -> [Double] {
    guard hi > lo else { return [lo] }
    let raw = (hi - lo) / 6, mag = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
    var out: [Double] = []
    var t = Foundation.ceil(lo / step) * step
    while t <= hi + step * 1e-9 {
        out.append(abs(t) < step * 1e-9 ? 0 : t)
        t += step
    }
    return out
}

/// Values to colours along viridis (dark blue-purple to yellow; its lightness rises monotonically, so the
/// picture reads the same in grey). Logarithmic when the positive values span more than 10×.
struct ColorScale {
    var log: Bool
    var range: (Double, Double)?
    init(values: [Double]) {
        // Log when the positive values span more than 10×; zeros and negatives then show grey. Linear
        // otherwise, over every value.
        let positive = values.filter { $0 > 0 }
        if let lo = positive.min(), let hi = positive.max(), hi / lo > 10 {
            log = true
            range = (lo, hi)
        } else if let lo = values.min(), let hi = values.max() {
            log = false
            range = (lo, hi)
        } else {
            log = false
            range = nil
        }
    }

    func color(_ v: Double) -> String {
        guard let (lo, hi) = range else { return "#ffffff" }
        if log && v <= 0 { return "#d9d9d9" }
        let u: Double
        if hi <= lo { u = 0.5 } else if log { u = (Foundation.log(v) - Foundation.log(lo)) / (Foundation.log(hi) - Foundation.log(lo)) } else { u = (v - lo) / (hi - lo) }
        return Self.palette(min(1, max(0, u)))
    }

    /// Viridis at u in [0, 1]: linear between nine of its published samples.
    static func palette(_ u: Double) -> String {
        let stops: [(Double, Double, Double)] = [
            (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140),
            (39, 173, 129), (94, 201, 98), (170, 220, 50), (253, 231, 37),
        ]
        let p = min(1, max(0, u)) * Double(stops.count - 1)
        let i = min(Int(p), stops.count - 2), f = p - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        func c(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * f).rounded()) }
        return String(format: "#%02x%02x%02x", c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
    }
}

/// A label's baseline near `y`, clear of the labels already `placed` (x from, x to, baseline) whose extent
/// overlaps `span` (its x extent): the first free one of y, y + h, y − h, y + 2h, y − 2h, … inside
/// [top, bottom] (a bounded search), else y clamped to the plot.
func labelY(_ y: Double, span: (Double, Double), placed: [(Double, Double, Double)], h: Double, top: Double, bottom: Double) -> Double {
    for k in 0..<41 {
        let c = y + Double((k + 1) / 2) * h * (k % 2 == 1 ? 1 : -1)
        guard c >= top, c <= bottom else { continue }
        if !placed.contains(where: { $0.0 < span.1 && span.0 < $0.1 && abs($0.2 - c) < h }) { return c }
    }
    return min(max(y, top), bottom)
}

// MARK: text

struct HTMLPage {
    var text = ""
    mutating func raw(_ s: String) { text += s }
}

/// Escapes text for XML content and attribute values.
func esc(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        // XML 1.0 has no control characters but tab, newline and return: a path holding one shows U+FFFD.
        case _ where ch.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" }: out += "\u{FFFD}"
        default: out.append(ch)
        }
    }
    return out
}

/// A number as the page shows it: 6 significant digits, the same bytes on every run.
func num(_ v: Double) -> String { String(format: "%.6g", v) }
/// A number as the page records it in `data-*` attributes: every digit a Double has.
func exact(_ v: Double) -> String { String(format: "%.17g", v) }
/// Tick labels of a linear axis: as many decimals as the step between ticks needs, so that close ticks
/// (two files a few bytes apart) still read apart.
func tickLabels(_ ticks: [Double], log: Bool) -> [String] {
    guard !log, ticks.count >= 2 else { return ticks.map(num) }
    let step = abs(ticks[1] - ticks[0]), decimals = max(0, Int(-Foundation.floor(Foundation.log10(step) + 1e-9)))
    return ticks.map { String(format: "%.\(min(decimals, 15))f", $0) }
}
/// A pixel coordinate: two decimals.
func px(_ v: Double) -> String { String(format: "%.2f", v) }
func grouped(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

/// An allocation to show: `allocate --json`'s report, or the `allocation` of a `quantize` report. Checked
/// against the statistics it is shown with (the same format and tensors).
public func readAllocationReport(_ path: String, stats: SensitivityStats) throws -> AllocationReport {
    func bad(_ field: String, _ expected: String, _ found: String) -> MixedPrecisionError {
        .stats(file: path, field: field, expected: expected, found: found)
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let dec = JSONDecoder()
    let report: AllocationReport
    let isQuantizeReport = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["modules"] != nil
    do {
        if isQuantizeReport {
            guard let a = try dec.decode(QuantizeReport.self, from: data).allocation else {
                throw bad("allocation", "a mixed-precision allocation (quantize --target-bpw)", "a uniform quantize report")
            }
            report = a
        } else {
            report = try dec.decode(AllocationReport.self, from: data)
        }
    } catch let e as DecodingError {
        throw bad("(the whole file)", "the JSON of `hessdist allocate --json` or `hessdist quantize`'s report", "\(e)")
    }
    guard report.format == stats.format.rawValue else { throw bad("format", stats.format.rawValue, report.format) }
    let byName = Dictionary(stats.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var seen = Set<String>()
    for t in report.tensors {
        guard let s = byName[t.name] else { throw bad("tensors[].name", "a tensor of the statistics' model \(stats.model)", t.name) }
        guard seen.insert(t.name).inserted else { throw bad("tensors[].name", "each tensor once", "\(t.name) twice") }
        guard t.candidates.contains(where: { $0.type == t.chosen }) else {
            throw bad("tensors[\(t.name)].chosen", "one of its candidates (\(t.candidates.map(\.type).joined(separator: ", ")))", t.chosen)
        }
        for c in t.candidates {
            guard let mine = s.candidates.first(where: { $0.type == c.type }), mine.bytes == c.bytes else {
                throw bad("tensors[\(t.name)].candidates[\(c.type)].bytes", "the statistics' \(s.candidates.first { $0.type == c.type }.map { "\($0.bytes)" } ?? "(no such candidate)") (an allocation from this profile)", "\(c.bytes)")
            }
        }
    }
    return report
}

/// Evaluated files to plot on one perplexity axis: each read as `readMeasuredFile` reads it, and all measured alike
/// (the same text, context and scored tokens) or the comparison would mean nothing.
public func readMeasuredFiles(_ paths: [String], parameters: Int) throws -> [SensitivityReport.MeasuredFile] {
    var out: [SensitivityReport.MeasuredFile] = []
    var first: (path: String, protocol: String)?
    for path in paths {
        let (file, r) = try readEvaluation(path, parameters: parameters)
        let how = "text \(r.text.map { ($0 as NSString).lastPathComponent } ?? "?"), context \(r.context), \(r.tokensScored) tokens scored"
        if let first, first.protocol != how {
            throw MixedPrecisionError.stats(file: path, field: "text/context/tokensScored", expected: "\(first.protocol) (as \(first.path))", found: how)
        }
        if first == nil { first = (path, how) }
        out.append(file)
    }
    return out
}

/// An evaluated file to plot: a `hessdist eval --json` result that records what it measured, of a model with
/// `parameters` weights (the statistics' model).
public func readMeasuredFile(_ path: String, parameters: Int) throws -> SensitivityReport.MeasuredFile {
    try readEvaluation(path, parameters: parameters).file
}

/// `readMeasuredFile` with the evaluation it read.
func readEvaluation(_ path: String, parameters: Int) throws -> (file: SensitivityReport.MeasuredFile, result: PerplexityResult) {
    func bad(_ field: String, _ expected: String, _ found: String) -> MixedPrecisionError {
        .stats(file: path, field: field, expected: expected, found: found)
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let r = try? JSONDecoder().decode(PerplexityResult.self, from: data) else {
        throw bad("(the whole file)", "the JSON of `hessdist eval --json`", "something else")
    }
    guard let bytes = r.fileBytes, let n = r.parameters else {
        throw bad("fileBytes", "the evaluated file's size (written by `hessdist eval --json` since the report plots it: evaluate again)", "none")
    }
    guard n == parameters else { throw bad("parameters", "\(parameters) (the statistics' model)", "\(n)") }
    var label = ((r.model ?? path) as NSString).lastPathComponent
    if label.hasSuffix(".gguf") { label.removeLast(5) }
    return (.init(label: label, fileBytes: bytes, perplexity: r.perplexity, standardError: r.standardError, meanKL: r.reference?.meanKL), r)
}
