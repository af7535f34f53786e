/// Composes ``TaskMiddleware`` in the order written (the first is
/// outermost), with `if`, `if let`, `switch` and `for`.
@resultBuilder
public enum TaskMiddlewareBuilder {
    public static func buildExpression(_ middleware: any TaskMiddleware) -> [any TaskMiddleware] { [middleware] }
    public static func buildExpression(_ middleware: [any TaskMiddleware]) -> [any TaskMiddleware] { middleware }
    public static func buildBlock(_ components: [any TaskMiddleware]...) -> [any TaskMiddleware] { components.flatMap { $0 } }
    public static func buildOptional(_ component: [any TaskMiddleware]?) -> [any TaskMiddleware] { component ?? [] }
    public static func buildEither(first component: [any TaskMiddleware]) -> [any TaskMiddleware] { component }
    public static func buildEither(second component: [any TaskMiddleware]) -> [any TaskMiddleware] { component }
    public static func buildArray(_ components: [[any TaskMiddleware]]) -> [any TaskMiddleware] { components.flatMap { $0 } }
}
