/// `--plot FILE.svg`: the table drawn as horizontal bars, one panel per
/// unit (rates, CPU per task, milliseconds, ...), each bar the median over
/// the repetitions with a whisker from the min to the max. Hand-written
/// SVG: no dependency, viewable in any browser and embeddable in Markdown.
enum Plot {
    private static let width = 960.0
    private static let labelWidth = 330.0
    private static let valueWidth = 90.0
    private static let barHeight = 16.0
    private static let rowHeight = 24.0
    private static let panelGap = 34.0

    static func svg(_ lines: [Rows.Line], title: String) -> String {
        // Panels by unit, in the order the table first shows each unit.
        var units: [String] = []
        for line in lines where !units.contains(group(line.unit)) { units.append(group(line.unit)) }
        let plotWidth = width - labelWidth - valueWidth - 20
        var body = ""
        var y = 60.0
        for unit in units {
            let panel = lines.filter { group($0.unit) == unit }
            let top = Swift.max(panel.map(\.summary.max).max() ?? 0, 1e-9) * 1.05
            body += #"<text x="10" y="\#(y)" class="unit">\#(escape(unitTitle(unit)))</text>"# + "\n"
            y += 10
            let panelTop = y
            // Grid: 0, 25, 50, 75, 100 % of the panel's scale.
            for step in 0...4 {
                let x = labelWidth + plotWidth * Double(step) / 4
                let value = top * Double(step) / 4
                body += #"<line x1="\#(x)" y1="\#(panelTop)" x2="\#(x)" y2="\#(panelTop + rowHeight * Double(panel.count))" class="grid"/>"# + "\n"
                body += #"<text x="\#(x)" y="\#(panelTop + rowHeight * Double(panel.count) + 12)" class="tick">\#(Rows.format(value))</text>"# + "\n"
            }
            for line in panel {
                let middle = y + rowHeight / 2
                let scale = { (value: Double) in labelWidth + plotWidth * value / top }
                body += #"<text x="\#(labelWidth - 8)" y="\#(middle + 4)" class="label">\#(escape(line.name))</text>"# + "\n"
                body += #"<rect x="\#(labelWidth)" y="\#(middle - barHeight / 2)" width="\#(Swift.max(0, scale(line.summary.median) - labelWidth))" height="\#(barHeight)" class="\#(line.name.hasPrefix("1 ") || line.name.hasPrefix("8 ") ? "base" : "bar")"/>"# + "\n"
                let (low, high) = (scale(line.summary.min), scale(line.summary.max))
                body += #"<line x1="\#(low)" y1="\#(middle)" x2="\#(high)" y2="\#(middle)" class="whisker"/>"# + "\n"
                for x in [low, high] {
                    body += #"<line x1="\#(x)" y1="\#(middle - 5)" x2="\#(x)" y2="\#(middle + 5)" class="whisker"/>"# + "\n"
                }
                let ratio = line.ratio.map { String(format: "  (%.2f x)", $0) } ?? ""
                body += #"<text x="\#(width - valueWidth - 10)" y="\#(middle + 4)" class="value">\#(escape(Rows.format(line.summary.median) + ratio))</text>"# + "\n"
                y += rowHeight
            }
            y += panelGap
        }
        let height = y
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <style>
            .title { font-size: 14px; font-weight: bold; }
            .unit { font-weight: bold; }
            .label { text-anchor: end; }
            .tick { text-anchor: middle; fill: #666; font-size: 10px; }
            .grid { stroke: #ddd; }
            .bar { fill: #4a7ab5; }
            .base { fill: #999; }
            .whisker { stroke: #000; stroke-width: 1.2; }
            .value { fill: #222; }
            </style>
            <rect width="100%" height="100%" fill="white"/>
            <text x="10" y="20" class="title">\(escape(title))</text>
            <text x="10" y="34" fill="#555">bars: median of the repetitions; whiskers: min to max; grey: the bare rabbitmq-c baselines; (x): ratio as in the table</text>
            \(body)</svg>

            """
    }

    /// The baseline's messages and the worker's tasks share a panel.
    private static func group(_ unit: String) -> String { unit == "msg/s" ? "tasks/s" : unit }

    private static func unitTitle(_ unit: String) -> String {
        switch unit {
        case "tasks/s": return "messages or tasks per second (higher is better)"
        case "us": return "CPU microseconds per task (lower is better)"
        case "ms": return "milliseconds (lower is better)"
        default: return unit
        }
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
