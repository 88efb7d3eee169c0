import Foundation
import Testing
import TestSupport
import Node
import HessianDist

/// `hessdist quantize` as a user runs it, checked by independent readers and by quality.
@Suite(.serialized) struct QuantizeCLITests {
    let stories = TestData.shared("llama2c/stories260K.bin")
    let tok = TestData.shared("llama2c/tok512.bin")

    /// Calibration and evaluation texts cut from the TinyStories sample so they do not overlap.
    func texts() throws -> (calib: String, eval: String) {
        let dir = try TestData.tempDir("qtext")
        let lines = try String(contentsOfFile: TestData.shared("text/tinystories_valid_sample.txt"), encoding: .utf8)
            .split(whereSeparator: \.isNewline)
        let calib = dir.appendingPathComponent("calib.txt").path, eval = dir.appendingPathComponent("eval.txt").path
        try lines.prefix(9).joined(separator: "\n").write(toFile: calib, atomically: true, encoding: .utf8)
        try lines.dropFirst(9).joined(separator: "\n").write(toFile: eval, atomically: true, encoding: .utf8)
        return (calib, eval)
    }

    func quantize(_ method: String, type: String, calib: String, out: String) throws -> [String: Any] {
        try run(hessdistBinary, ["quantize", "--model", stories, "--tokenizer", tok, "--calib", calib,
                                 "--nsamples", "16", "--seqlen", "64", "--type", type, "--method", method, "--out", out])
        let report = try Data(contentsOf: URL(fileURLWithPath: out + ".report.json"))
        return try JSONSerialization.jsonObject(with: report) as! [String: Any]
    }

    func klAgainstOriginal(_ model: String, eval: String) throws -> Double {
        let out = try run(hessdistBinary, ["eval", "--model", model, "--tokenizer", tok, "--text", eval, "--ctx", "64",
                                           "--reference", stories, "--json"])
        let j = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        return (j["reference"] as! [String: Any])["meanKL"] as! Double
    }

    @Test func gptqBeatsRTNAndGGUFPyReadsWhatWeWrote() throws {
        let (calib, eval) = try texts()
        let dir = try TestData.tempDir("quant")
        let g = dir.appendingPathComponent("gptq.gguf").path, r = dir.appendingPathComponent("rtn.gguf").path
        let gr = try quantize("gptq", type: "q4_0", calib: calib, out: g)
        _ = try quantize("rtn", type: "q4_0", calib: calib, out: r)
        // Per module, GPTQ's layer-wise error is at most RTN's on the same grid.
        for m in gr["modules"] as! [[String: Any]] {
            if let ge = m["gptqError"] as? Double, let re = m["rtnError"] as? Double {
                #expect(ge <= re * (1 + 1e-6), "\(m["name"]!): GPTQ \(ge) > RTN \(re)")
            }
        }
        // The output head (stories260K's tied embedding) is solved by GPTQ too, with the final hidden states' H.
        let head = (gr["modules"] as! [[String: Any]]).first { $0["name"] as? String == "token_embd.weight" }
        #expect(head?["method"] as? String == "gptq" && head?["storage"] as? String == "Q8_0", "head: \(head ?? [:])")
        if let ge = head?["gptqError"] as? Double, let re = head?["rtnError"] as? Double {
            #expect(ge < re, "head: GPTQ \(ge) not below RTN \(re)")
        } else { Issue.record("head: no GPTQ/RTN errors in \(head ?? [:])") }
        // On held-out text the GPTQ model is closer to the original than RTN's.
        let klG = try klAgainstOriginal(g, eval: eval), klR = try klAgainstOriginal(r, eval: eval)
        #expect(klG < klR, "KL gptq \(klG) vs rtn \(klR)")
        // Same size: the same types were written.
        let sg = try FileManager.default.attributesOfItem(atPath: g)[.size] as! Int
        let sr = try FileManager.default.attributesOfItem(atPath: r)[.size] as! Int
        #expect(sg == sr)
        // gguf-py reads every tensor; its dequantization equals ours exactly (inspect through our reader).
        let dump = dir.appendingPathComponent("dump")
        try FileManager.default.createDirectory(at: dump, withIntermediateDirectories: true)
        try runPython("gguf_read_written.py", ["dump", g, dump.path])
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dump.appendingPathComponent("meta.json"))) as! [String: Any]
        let tensors = meta["tensors"] as! [[String: Any]]
        #expect(tensors.count == 1 + 5 * 9 + 1)
        let model = try GGUFModel(path: g)
        var q4 = 0
        for (i, t) in tensors.enumerated() {
            let name = t["name"] as! String
            if (t["type"] as! Int) == Int(GGMLType.q4_0.rawValue) { q4 += 1 }
            let theirs = try readF32(dump.appendingPathComponent("\(i).f32").path)
            let ours = try model.dequantize(name)
            #expect(theirs.map(\.bitPattern) == ours.map(\.bitPattern), "\(name): gguf-py and we dequantize differently")
        }
        #expect(q4 == 5 * 6, "q, k, v, o, gate, up of every block are Q4_0 (down falls back: 172 columns)")
    }

    /// `--target-bpw`: the planned size is the written size, within the budget; gguf-py reads the mixed types
    /// we report and dequantizes them as we do; a larger budget gives a lower predicted cost and a model
    /// closer to the original on held-out text; an impossible budget names the smallest size.
    @Test func mixedPrecisionMeetsTheBudgetExactly() throws {
        let (calib, eval) = try texts()
        let dir = try TestData.tempDir("mixed")
        func mixed(_ bpw: Double, _ extra: [String] = []) throws -> (path: String, report: [String: Any], allocation: [String: Any]) {
            let out = dir.appendingPathComponent("mixed-\(bpw)\(extra.joined()).gguf").path
            try run(hessdistBinary, ["quantize", "--model", stories, "--tokenizer", tok, "--calib", calib,
                                     "--nsamples", "16", "--seqlen", "64", "--target-bpw", "\(bpw)", "--out", out] + extra)
            let r = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + ".report.json"))) as! [String: Any]
            return (out, r, r["allocation"] as! [String: Any])
        }
        let low = try mixed(8.25), high = try mixed(10)
        // HAWQ costs from loss-Hessian traces: every block linear gets a trace (Fisher's are sums of squares).
        let fisher = try mixed(9, ["--sensitivity", "fisher", "--fisher-samples", "4"])
        let hutch = try mixed(9, ["--sensitivity", "hutchinson", "--hutchinson-samples", "4", "--max-probes", "10"])
        for m in [fisher, hutch] {
            let traces = m.allocation["traces"] as! [[String: Any]]
            #expect(traces.count == (m.allocation["tensors"] as! [Any]).count)
            if m.allocation["sensitivity"] as? String == "fisher" { #expect(traces.allSatisfy { ($0["mean"] as! Double) > 0 }) }
        }
        for m in [low, high, fisher, hutch] {
            let size = try FileManager.default.attributesOfItem(atPath: m.path)[.size] as! Int
            #expect(m.allocation["plannedFileBytes"] as? Int == size)
            #expect(size <= m.allocation["budgetBytes"] as! Int)
            #expect(m.allocation["optimal"] as? Bool == true)
        }
        #expect((high.allocation["totalCost"] as! Double) < (low.allocation["totalCost"] as! Double))
        // The mid budget mixes types; gguf-py sees exactly the chosen ones and dequantizes them as we do.
        let chosen = Dictionary(uniqueKeysWithValues: (low.allocation["tensors"] as! [[String: Any]]).map {
            ($0["name"] as! String, $0["chosen"] as! String) })
        #expect(Set(chosen.values).count >= 2, "\(chosen)")
        let dump = dir.appendingPathComponent("dump")
        try FileManager.default.createDirectory(at: dump, withIntermediateDirectories: true)
        try runPython("gguf_read_written.py", ["dump", low.path, dump.path])
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dump.appendingPathComponent("meta.json"))) as! [String: Any]
        let model = try GGUFModel(path: low.path)
        var seen = 0
        for (i, t) in (meta["tensors"] as! [[String: Any]]).enumerated() {
            let name = t["name"] as! String
            if let c = chosen[name] {
                #expect(GGMLType(rawValue: UInt32(t["type"] as! Int))?.description == c, "\(name)")
                seen += 1
            }
            let theirs = try readF32(dump.appendingPathComponent("\(i).f32").path)
            #expect(theirs.map(\.bitPattern) == (try model.dequantize(name)).map(\.bitPattern), "\(name)")
        }
        #expect(seen == chosen.count)
        #expect(try klAgainstOriginal(high.path, eval: eval) < klAgainstOriginal(low.path, eval: eval))
        #expect { try mixed(3) } throws: { "\($0)".contains("smallest file these candidates allow") }
    }

    /// `profile` once, then `allocate` and `quantize --stats` at any budget: the same file as profiling
    /// inside `quantize`, the embedding allocated with the block linears, and bad stats files refused.
    @Test func profileThenAllocateGivesTheSameFile() throws {
        let (calib, evalText) = try texts()
        let dir = try TestData.tempDir("profile")
        let common = ["--model", stories, "--tokenizer", tok, "--calib", calib, "--nsamples", "16", "--seqlen", "64"]
        let stats = dir.appendingPathComponent("stats.safetensors").path
        let table = try run(hessdistBinary, ["profile"] + common + ["--traces", "fisher,hutchinson", "--fisher-samples", "4", "--hutchinson-samples", "2",
                                                                     "--max-probes", "10", "--eigenvalues", "blk.0.attn_q", "--fisher-row-block", "16",
                                                                     "--kl-samples", "2", "--out", stats])
        #expect(table.contains("token_embd.weight") && table.contains("Hutchinson") && table.contains("forwards"), "\(table)")
        #expect(table.components(separatedBy: "λmax").count == 2, "one tensor asked for its top eigenvalue: \(table)")
        // safetensors reads the container: one imatrix per profiled tensor, the JSON in the metadata.
        let check = try runPython("stats_check.py", [stats])
        #expect(check.contains("ok 31"), "\(check)")
        let json = dir.appendingPathComponent("plan.json").path, html = dir.appendingPathComponent("plan.html").path
        let plan = try run(hessdistBinary, ["allocate", "--stats", stats, "--target-bpw", "8.5", "--sensitivity", "fisher",
                                            "--json", json, "--html", html])
        #expect(plan.contains("optimal") && plan.contains("token_embd.weight"), "\(plan)")
        // The readable report: its plots and table hold the statistics' and the allocation's numbers.
        let page = try runPython("report_check.py", [html, stats, json])
        #expect(page.contains("ok heatmaps, row blocks") && page.contains("types 31"), "\(page)")
        for s in ["hessian-error", "fisher", "hutchinson", "kl"] {
            let a = dir.appendingPathComponent("inline-\(s).gguf").path, b = dir.appendingPathComponent("stats-\(s).gguf").path
            try run(hessdistBinary, ["quantize"] + common + ["--target-bpw", "8.5", "--sensitivity", s, "--fisher-samples", "4",
                                                             "--hutchinson-samples", "2", "--max-probes", "10", "--out", a])
            try run(hessdistBinary, ["quantize"] + common + ["--target-bpw", "8.5", "--sensitivity", s, "--stats", stats, "--out", b,
                                                             "--html", b + ".html"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)), "\(s)")
            let r = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: b + ".report.json"))) as! [String: Any]
            let alloc = r["allocation"] as! [String: Any]
            #expect((alloc["tensors"] as! [[String: Any]]).contains { $0["name"] as? String == "token_embd.weight" })
            #expect(alloc["plannedFileBytes"] as? Int == r["fileBytes"] as? Int)
        }
        // `report --allocation` shows what quantize wrote; with Hutchinson traces, that heatmap too.
        let written = dir.appendingPathComponent("written.html").path
        try run(hessdistBinary, ["report", "--stats", stats, "--allocation", dir.appendingPathComponent("stats-kl.gguf.report.json").path, "--out", written])
        #expect(try runPython("report_check.py", [written, stats, dir.appendingPathComponent("stats-kl.gguf.report.json").path]).contains("types 31"))
        #expect(try String(contentsOfFile: written, encoding: .utf8).contains("id=\"heat-hutchinson\""))
        // With measured files: `eval --json` records each file's size, and the page plots their perplexities.
        var evals: [String] = []
        for s in ["fisher", "kl"] {
            let f = dir.appendingPathComponent("stats-\(s).gguf").path, e = f + ".eval.json"
            try run(hessdistBinary, ["eval", "--model", f, "--text", evalText, "--ctx", "64", "--chunks", "4", "--reference", stories,
                                     "--json"]).write(toFile: e, atomically: true, encoding: .utf8)
            let r = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: e))) as! [String: Any]
            #expect(r["fileBytes"] as? Int == (try Data(contentsOf: URL(fileURLWithPath: f))).count && r["parameters"] as? Int == 260032)
            evals += ["--eval", e]
        }
        let measured = dir.appendingPathComponent("measured.html").path
        try run(hessdistBinary, ["report", "--stats", stats, "--target-bpw", "8.5", "--out", measured] + evals)
        #expect(try runPython("report_check.py", [measured, stats] + evals).contains("measured 2"))
        // quantize --html writes the same page from the same statistics and allocation.
        #expect(try Data(contentsOf: URL(fileURLWithPath: written)) == Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent("stats-kl.gguf.html").path)))
        #expect { try run(hessdistBinary, ["report", "--stats", stats, "--allocation", stats, "--out", written]) } throws: { "\($0)".contains("hessdist allocate --json") }
        // What the command would silently drop, or an output over an input, is refused.
        #expect { try run(hessdistBinary, ["report", "--stats", stats, "--pin", "token_embd.weight=Q8_0", "--out", written]) } throws: { "\($0)".contains("--pin: shapes an allocation") }
        #expect { try run(hessdistBinary, ["report", "--stats", stats, "--out", stats]) } throws: { "\($0)".contains("the same file as --stats") }
        // A pin holds: the embedding stays Q8_0 and the rest works around it.
        let pinned = try run(hessdistBinary, ["allocate", "--stats", stats, "--target-bpw", "8.5", "--pin", "token_embd.weight=Q8_0"])
        #expect(pinned.contains("token_embd.weight Q8_0 (pinned)"), "\(pinned)")
        // Not a stats file, and stats of another model: errors naming the file and the field.
        #expect { try run(hessdistBinary, ["allocate", "--stats", stories, "--target-bpw", "8"]) } throws: { "\($0)".contains(stories) }
        let wrong = dir.appendingPathComponent("wrong.safetensors").path
        try runPython("stats_check.py", [stats, "--rewrite-parameters", wrong])
        #expect { try run(hessdistBinary, ["quantize"] + common + ["--target-bpw", "8.5", "--stats", wrong,
                                                                  "--out", dir.appendingPathComponent("x.gguf").path]) }
            throws: { "\($0)".contains("parameters") && "\($0)".contains("wrong.safetensors") }
    }

    /// `profile --kl-samples`: every candidate's measured KL damage, of round-to-nearest, or of GPTQ's result
    /// with `--gptq-errors` (the tied embedding's as the output head); more bits do less damage, GPTQ less
    /// than rounding; `allocate --sensitivity kl` uses them and names the missing profile flag otherwise.
    @Test func profiledKLDamageOrdersTheCandidates() throws {
        let (calib, _) = try texts()
        let dir = try TestData.tempDir("kl")
        let common = ["--model", stories, "--tokenizer", tok, "--calib", calib, "--nsamples", "8", "--seqlen", "64"]
        func profile(_ name: String, _ extra: [String]) throws -> [[String: Any]] {
            let path = dir.appendingPathComponent(name).path
            try run(hessdistBinary, ["profile"] + common + ["--traces", "none", "--candidates", "Q4_0,Q8_0", "--out", path] + extra)
            let json = try JSONSerialization.jsonObject(with: Data(try SafetensorsFile(path: path).metadata["hessdist.stats"]!.utf8)) as! [String: Any]
            return json["tensors"] as! [[String: Any]]
        }
        let rtn = try profile("rtn.safetensors", ["--kl-samples", "2"])
        let gptq = try profile("gptq.safetensors", ["--kl-samples", "2", "--gptq-errors"])
        var rtnSum = 0.0, gptqSum = 0.0
        for (r, g) in zip(rtn, gptq) {
            let name = r["name"] as! String
            func kl(_ t: [String: Any], _ type: String, _ key: String) -> Double? {
                (t["candidates"] as! [[String: Any]]).first { $0["type"] as? String == type }?[key] as? Double
            }
            let q4 = try #require(kl(r, "Q4_0", "kl"), "\(name)"), q8 = try #require(kl(r, "Q8_0", "kl"), "\(name)")
            #expect(q4 > 0 && q8 >= 0 && q8 < q4, "\(name): Q8_0 \(q8) vs Q4_0 \(q4)")
            // Every tensor GPTQ quantizes, the tied embedding too (GPTQ as the output head).
            let gq4 = try #require(kl(g, "Q4_0", "gptqKL"), "\(name)")
            #expect(kl(g, "Q4_0", "kl") == nil && gq4 > 0, "\(name)")
            rtnSum += q4
            gptqSum += gq4
        }
        #expect(gptqSum < rtnSum, "GPTQ's damage \(gptqSum) vs round-to-nearest's \(rtnSum)")
        let none = dir.appendingPathComponent("none.safetensors").path
        try run(hessdistBinary, ["profile"] + common + ["--traces", "none", "--candidates", "Q4_0,Q8_0", "--out", none])
        let plan = try run(hessdistBinary, ["allocate", "--stats", dir.appendingPathComponent("gptq.safetensors").path,
                                            "--target-bpw", "8", "--sensitivity", "kl"])
        #expect(plan.contains("optimal"), "\(plan)")
        #expect { try run(hessdistBinary, ["allocate", "--stats", none, "--target-bpw", "8", "--sensitivity", "kl"]) }
            throws: { "\($0)".contains("--kl-samples") }
        #expect { try run(hessdistBinary, ["allocate", "--stats", dir.appendingPathComponent("gptq.safetensors").path,
                                           "--target-bpw", "8", "--sensitivity", "kl", "--errors", "rtn"]) }
            throws: { "\($0)".contains("--kl-samples") }
    }

    /// `profile --gptq-errors` prices a candidate by GPTQ's own result with quantize's default solver:
    /// for block 0, whose inputs do not depend on earlier quantization, its error is the very error
    /// `quantize --type q4_0` reports for that module; and the allocation uses it unless told `--errors rtn`.
    @Test func profiledGPTQErrorsAreTheQuantizersOwn() throws {
        let (calib, _) = try texts()
        let dir = try TestData.tempDir("gptq-errors")
        let common = ["--model", stories, "--tokenizer", tok, "--calib", calib, "--nsamples", "16", "--seqlen", "64"]
        let stats = dir.appendingPathComponent("stats.safetensors").path
        try run(hessdistBinary, ["profile"] + common + ["--traces", "none", "--candidates", "Q4_0,Q8_0", "--gptq-errors", "--out", stats])
        let f = try SafetensorsFile(path: stats)
        let json = try JSONSerialization.jsonObject(with: Data(f.metadata["hessdist.stats"]!.utf8)) as! [String: Any]
        var profiled: [String: [String: Any]] = [:]
        for t in json["tensors"] as! [[String: Any]] {
            for c in t["candidates"] as! [[String: Any]] where c["type"] as? String == "Q4_0" { profiled[t["name"] as! String] = c }
        }
        let report = try quantize("gptq", type: "q4_0", calib: calib, out: dir.appendingPathComponent("q.gguf").path)
        var checked = 0
        for m in report["modules"] as! [[String: Any]] {
            let name = m["name"] as! String
            guard name.hasPrefix("blk.0.attn_"), ["q", "k", "v"].contains(where: { name.hasPrefix("blk.0.attn_\($0).") }) else { continue }
            let c = try #require(profiled[name])
            let want = m["gptqError"] as! Double, got = try #require(c["gptqLayerError"] as? Double)
            #expect(abs(got - want) <= 1e-9 * want, "\(name): profiled \(got), quantize \(want)")
            #expect(got < (c["layerError"] as! Double), "\(name): GPTQ \(got) not below round-to-nearest \(c["layerError"]!)")
            checked += 1
        }
        #expect(checked == 3)
        let byDefault = try run(hessdistBinary, ["allocate", "--stats", stats, "--target-bpw", "8", "--sensitivity", "hessian-error", "--json",
                                                 dir.appendingPathComponent("a.json").path])
        let a = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("a.json"))) as! [String: Any]
        #expect(a["errors"] as? String == "gptq", "\(byDefault)")
        let rtn = try run(hessdistBinary, ["allocate", "--stats", stats, "--target-bpw", "8", "--sensitivity", "hessian-error", "--errors", "rtn"])
        #expect(rtn != byDefault)
    }

    /// `--format gptq --target-bpw`: profile once for the checkpoint's grids, then quantize at two budgets.
    /// The checkpoint's size (every file) is the planned size, within the budget; the mid budget mixes bit
    /// widths; fused q/k/v and gate/up share their bits, in the plan and in the checkpoint as the checker
    /// reads it from `dynamic`; more budget predicts less damage; profiling inside quantize writes the same
    /// checkpoint; stats of the other format are refused naming the file and the field.
    @Test func mixedGPTQCheckpointMeetsTheBudgetAndTies() throws {
        let (calib, _) = try texts()
        let dir = try TestData.tempDir("mixed-gptq")
        let common = ["--model", stories, "--tokenizer", tok, "--calib", calib, "--nsamples", "16", "--seqlen", "64",
                      "--format", "gptq", "--group-size=-1"]
        let stats = dir.appendingPathComponent("stats.safetensors").path
        try run(hessdistBinary, ["profile"] + common + ["--traces", "fisher", "--fisher-samples", "4", "--out", stats])
        let plan = try run(hessdistBinary, ["allocate", "--stats", stats, "--target-bpw", "9.2"])
        #expect(plan.contains("(gptq)") && plan.contains("tied: blk.0.attn_q.weight = blk.0.attn_k.weight = blk.0.attn_v.weight"), "\(plan)")
        func files(_ path: String) throws -> [String: Data] {
            Dictionary(uniqueKeysWithValues: try FileManager.default.contentsOfDirectory(atPath: path).map {
                ($0, try Data(contentsOf: URL(fileURLWithPath: path + "/" + $0))) })
        }
        func quantize(_ bpw: Double, _ extra: [String]) throws -> (path: String, report: [String: Any], allocation: [String: Any]) {
            let out = dir.appendingPathComponent("ckpt-\(bpw)\(extra.count)\(extra.last ?? "")".replacingOccurrences(of: "/", with: "_")).path
            try run(hessdistBinary, ["quantize"] + common + ["--target-bpw", "\(bpw)", "--out", out] + extra)
            let r = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + ".report.json"))) as! [String: Any]
            return (out, r, r["allocation"] as! [String: Any])
        }
        let mid = try quantize(9.2, ["--stats", stats]), high = try quantize(9.8, ["--stats", stats])
        let fisher = try quantize(9.5, ["--stats", stats, "--sensitivity", "fisher"])
        for m in [mid, high, fisher] {
            let size = try files(m.path).values.reduce(0) { $0 + $1.count }
            #expect(m.allocation["plannedFileBytes"] as? Int == size && m.report["fileBytes"] as? Int == size, "\(m.path)")
            #expect(size <= m.allocation["budgetBytes"] as! Int)
            #expect(m.allocation["optimal"] as? Bool == true && m.allocation["format"] as? String == "gptq")
            let chosen = Dictionary(uniqueKeysWithValues: (m.allocation["tensors"] as! [[String: Any]]).map {
                ($0["name"] as! String, $0["chosen"] as! String) })
            // The checkpoint as transformers' layout reads it: every module's bits from `dynamic`.
            let summary = try runPython("gptq_checkpoint_check.py", [m.path])
            let bits = (try JSONSerialization.jsonObject(with: Data(summary.utf8)) as! [String: Any])["module_bits"] as! [String: Int]
            for l in 0..<5 {
                let p = "model.layers.\(l)."
                #expect(chosen["blk.\(l).attn_q.weight"] == chosen["blk.\(l).attn_k.weight"]
                        && chosen["blk.\(l).attn_k.weight"] == chosen["blk.\(l).attn_v.weight"], "block \(l): \(chosen)")
                #expect(chosen["blk.\(l).ffn_gate.weight"] == chosen["blk.\(l).ffn_up.weight"], "block \(l)")
                #expect(bits[p + "self_attn.q_proj"] == bits[p + "self_attn.k_proj"] && bits[p + "self_attn.k_proj"] == bits[p + "self_attn.v_proj"])
                #expect(bits[p + "mlp.gate_proj"] == bits[p + "mlp.up_proj"])
            }
            for (name, label) in chosen {
                let hf = HFTensorName.hf(name)!.dropLast(".weight".count)
                #expect(bits[String(hf)].map { "int\($0)" } == label, "\(name): checkpoint bits \(bits[String(hf)] ?? 0), plan \(label)")
            }
            #expect(chosen.count == 35 && bits.count == 35)
        }
        let midChosen = Set((mid.allocation["tensors"] as! [[String: Any]]).map { $0["chosen"] as! String })
        #expect(midChosen.count >= 2, "the mid budget mixes bit widths: \(midChosen)")
        #expect((high.allocation["totalCost"] as! Double) < (mid.allocation["totalCost"] as! Double))
        // Profiling inside quantize: the same checkpoint as from the stats file.
        let inline = try quantize(9.2, ["--fisher-samples", "4"])
        #expect(try files(inline.path) == files(mid.path))
        // GGUF quantize refuses GPTQ statistics, naming the file and the field.
        #expect { try run(hessdistBinary, ["quantize", "--model", stories, "--tokenizer", tok, "--calib", calib, "--nsamples", "16",
                                           "--seqlen", "64", "--target-bpw", "9", "--stats", stats,
                                           "--out", dir.appendingPathComponent("x.gguf").path]) }
            throws: { "\($0)".contains(stats) && "\($0)".contains("format: expected gguf") }
    }

    @Test func quantizeRejectsBadOptions() throws {
        #expect { try run(hessdistBinary, ["quantize", "--model", stories, "--tokenizer", tok, "--type", "q4_0",
                                           "--method", "gptq", "--calib", "/nonexistent.txt", "--out", "/tmp/x.gguf"]) }
            throws: { "\($0)".contains("/nonexistent.txt") }
        #expect { try run(hessdistBinary, ["quantize", "--model", stories, "--type", "q9_9", "--out", "/tmp/x.gguf"]) }
            throws: { "\($0)".contains("q9_9") }
        #expect { try run(hessdistBinary, ["allocate", "--stats", stories, "--target-bpw", "5", "--choose-from", "Q4_0,Q9_9"]) }
            throws: { "\($0)".contains("--choose-from: 'Q9_9'") }
    }
}

@Suite struct QuantizeGPTQFormatTests {
    /// `--format gptq` writes a checkpoint whose layout transformers' GPTQ loader expects
    /// (checked by Tests/Python/gptq_checkpoint_check.py with the safetensors package).
    @Test func gptqCheckpointHasTheLoaderLayout() throws {
        let dir = try TestData.tempDir("gptqfmt")
        let out = dir.appendingPathComponent("ckpt").path
        try run(hessdistBinary, ["quantize", "--model", TestData.shared("llama2c/stories260K.bin"),
                                 "--tokenizer", TestData.shared("llama2c/tok512.bin"),
                                 "--calib", TestData.shared("text/tinystories_valid_sample.txt"),
                                 "--nsamples", "8", "--seqlen", "64", "--format", "gptq", "--bits", "8", "--group-size=-1",
                                 "--out", out])
        let summary = try runPython("gptq_checkpoint_check.py", [out])
        #expect(summary.contains("\"problems\": 0") || !summary.isEmpty)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as! [String: Any]
        let q = cfg["quantization_config"] as! [String: Any]
        #expect(q["bits"] as? Int == 8 && q["quant_method"] as? String == "gptq")
    }
}
