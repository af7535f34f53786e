import Foundation

extension TaskFailure {
    static func message(of error: any Error) -> String {
        if let error = error as? any LocalizedError, let text = error.errorDescription {
            return text
        }
        return String(describing: error)
    }
}
